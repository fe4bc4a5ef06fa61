/**
 * TypeScript client for the skopeo image-proxy wire, as served by layerpipe and by
 * `skopeo experimental-image-proxy`.
 *
 *   const proxy = await ImageProxy.spawn();            // or { command: 'skopeo' }
 *   await proxy.initialize();
 *   const img = await proxy.openImage('oci:/srv/layout:latest');
 *   const { bytes } = await proxy.getManifest(img);
 *   const blob = await proxy.getBlob(img, digest, size);
 *   const [data] = await Promise.all([readAll(blob.stream), blob.finish()]); // read while finishing
 *   await proxy.shutdown();                              // resolves to the exit status, 0
 *
 * ImageProxy.spawn() runs the proxy on a SOCK_SEQPACKET socketpair (spawn.ts,
 * seqpacket-channel.ts); ImageProxy.connect(channel) takes any other Channel.
 */
export { defaultProxyCommand, ImageProxy, type ImageProxyOptions } from './image-proxy';
export { ProxyClosedError, ProxyError, ProxyProtocolError, ProxyVersionError } from './errors';
export { PacketRefusedError, type Channel, type ChannelHandlers, type ChannelPacket, type PeerProcess } from './channel';
export { pipeReadable, readAll } from './pipes';
export type {
  BlobTransfer, CallResult, ManifestResult, OciContainerConfig, OciHistoryEntry, OciImageConfig, RawBlobTransfer, RawReply,
} from './types';
export { METHODS, type LayerInfo, type RawBlobError } from '../../protocol/methods';

// Protocol 1.0 (JSON-RPC 2.0).
export { ASKED_STREAM_WINDOW, RpcImageProxy, type BlobOptions, type CallOptions, type ConnectOptions, type ManifestBytes, type RawBlobOptions, type RpcBlob, type RpcTransport } from './rpc/image-proxy-1';
export { ProxyRpcError } from './rpc/errors';
export { connectUnixTransport, packetTransport, spawnPacketTransport, spawnStdioTransport, type StdioTransportOptions } from './rpc/transports';
