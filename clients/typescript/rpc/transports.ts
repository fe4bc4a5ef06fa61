/**
 * Ways to reach a 1.0 proxy: a child on a SOCK_SEQPACKET socketpair (`experimental-image-proxy`,
 * which tells 1.0 from 0.2.x by the first packet), a child speaking Content-Length framed
 * JSON-RPC on its stdio (`serve --stdio`), or any connected packet Channel (a unix service).
 */
import { spawn } from 'node:child_process';
import { StreamMessageWriter } from 'vscode-jsonrpc/node';
import type { Channel } from '../channel';
import { SeqpacketChannel, connectSeqpacket } from '../seqpacket-channel';
import { defaultProxyCommand, spawnProxyChannel, type ImageProxyOptions } from '../spawn';
import { PacketMessageReader, PacketMessageWriter, ReceivedFds } from './packet-messages';
import { ContentLengthMessageReader } from './stdio-messages';
import { TransferDataRoute } from './transfer-data';
import type { RpcTransport } from './image-proxy-1';

/** 1.0 messages are at most 1 MiB; a packet buffer of that size takes any of them. */
const RPC_MAX_PACKET = 1024 * 1024 + 4096;

/** A connected packet Channel (its peer already running) as a 1.0 transport; it takes the channel. */
export function packetTransport(channel: Channel): RpcTransport {
  const fds = new ReceivedFds();
  const transferData = new TransferDataRoute();
  const reader = new PacketMessageReader(channel, fds, transferData);
  return {
    reader,
    tapTransferData: (tap) => transferData.set(tap),
    writer: new PacketMessageWriter(channel, (err) => reader.lost(err)),
    payloads: ['fd', 'fifo', 'stream'],
    ...(channel.process?.pid === undefined ? {} : { pid: channel.process.pid }),
    fds,
    close: async () => {
      channel.close();
      await channel.waitClosed();
      return channel.process?.exitCode ?? null;
    },
  };
}

/** Runs `layerpipe experimental-image-proxy` on a socketpair, as ImageProxy.spawn does, for 1.0. */
export async function spawnPacketTransport(options: ImageProxyOptions = {}): Promise<RpcTransport> {
  return packetTransport(await spawnProxyChannel({ maxReplySize: RPC_MAX_PACKET, ...options }));
}

/** Connects to a running service (`layerpipe serve --listen unix:PATH`); each connection is its own session. */
export function connectUnixTransport(socketPath: string): RpcTransport {
  return packetTransport(new SeqpacketChannel(connectSeqpacket(socketPath), { peerName: `unix:${socketPath}`, maxPacketSize: RPC_MAX_PACKET }));
}

export interface StdioTransportOptions {
  /** Program to run; default: this package's bin/layerpipe. */
  readonly command?: string;
  /** Flags after `serve --stdio`. */
  readonly args?: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  /** close() kills the child with SIGKILL if it has not exited after this long. Default 10 s. */
  readonly exitTimeoutMs?: number;
}

/** Runs `layerpipe serve --stdio`: JSON-RPC on the child's stdin and stdout, its stderr kept for errors. */
export async function spawnStdioTransport(options: StdioTransportOptions = {}): Promise<RpcTransport & { readonly stderr: () => string }> {
  const command = options.command ?? defaultProxyCommand();
  const child = spawn(command, ['serve', '--stdio', ...(options.args ?? [])], { stdio: ['pipe', 'pipe', 'pipe'], env: options.env ?? process.env });
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-64 * 1024);
  });
  child.stdin.on('error', () => undefined); // a child that is gone shows as the reader's close
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const transferData = new TransferDataRoute();
  return {
    reader: new ContentLengthMessageReader(child.stdout, transferData),
    tapTransferData: (tap) => transferData.set(tap),
    writer: new StreamMessageWriter(child.stdin),
    payloads: ['fifo', 'stream'],
    ...(child.pid === undefined ? {} : { pid: child.pid }),
    stderr: () => stderr,
    close: async () => {
      child.stdin.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), options.exitTimeoutMs ?? 10_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}
