/**
 * The method suite (test/harness/method-suite.ts) over protocol 1.0: the real bin/layerpipe on a
 * SOCK_SEQPACKET socketpair with `fd` and `stream` payloads, and `serve --stdio` with `stream`,
 * driven by the raw test client (test/harness/jsonrpc-client.ts).
 */
import type { Readable } from 'node:stream';
import { pipeReadable } from '../../clients/typescript';
import type { LayerInfo } from '../../protocol/methods';
import { RpcTestClient } from '../harness/jsonrpc-client';
import { defineMethodSuite, type WireClient, type WireUnderTest } from '../harness/method-suite';

type Variant = { readonly name: string; readonly spawn: (args: readonly string[]) => RpcTestClient; readonly payload: 'fd' | 'stream' };

function decodeJson(data: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(data, 'base64').toString('utf8')) as Record<string, unknown>;
}

async function errorOf(promise: Promise<unknown>): Promise<Error | undefined> {
  return promise.then(() => undefined, (err: unknown) => err as Error);
}

function jsonRpcClient(c: RpcTestClient, payload: 'fd' | 'stream'): WireClient {
  /** The transfer's bytes, by the payload in use. */
  const bytesOf = (transfer: number, fds: number[]): Readable => (payload === 'fd' ? pipeReadable(fds[0]!) : c.streamReadable(transfer));
  const transfer = async (method: 'GetBlob' | 'GetRawBlob', params: Record<string, unknown>): Promise<{ size: number; stream: Readable; transfer: number }> => {
    const r = await c.call(method, params);
    if (r.error !== undefined) throw new Error(r.error.message);
    const { transfer: id, size } = r.result as { transfer: number; size: number };
    return { size, stream: bytesOf(id, r.fds), transfer: id };
  };
  return {
    openImage: async (reference) => (await c.request<{ image: number }>('OpenImage', { reference })).image,
    openImageOptional: async (reference) => (await c.request<{ image: number | null }>('OpenImageOptional', { reference })).image,
    closeImage: async (image) => {
      await c.request('CloseImage', { image });
    },
    getManifest: async (image) => {
      const m = await c.request<{ digest: string; data: string }>('GetManifest', { image });
      return { digest: m.digest, bytes: Buffer.from(m.data, 'base64') };
    },
    getFullConfig: async (image) => decodeJson((await c.request<{ data: string }>('GetFullConfig', { image })).data),
    getConfig: async (image) => decodeJson((await c.request<{ data: string }>('GetConfig', { image })).data),
    getLayerInfo: async (image) => (await c.request<{ layers: { digest: string; size: number; mediaType: string }[] }>('GetLayerInfo', { image }))
      .layers.map((l): LayerInfo => ({ digest: l.digest, size: l.size, media_type: l.mediaType })),
    getBlob: async (image, digest, size) => {
      const t = await transfer('GetBlob', { image, digest, size });
      return { size: t.size, stream: t.stream, finish: async () => { await c.request('FinishTransfer', { transfer: t.transfer }); } };
    },
    getRawBlob: async (image, digest) => {
      const t = await transfer('GetRawBlob', { image, digest });
      const error = errorOf(c.request('FinishTransfer', { transfer: t.transfer })).then((err) => {
        if (err === undefined) return null;
        const rpc = (err as Error & { rpc: { data?: { error_code: string } } }).rpc;
        return { code: rpc.data?.error_code ?? 'other', message: err.message };
      });
      return { size: t.size, stream: t.stream, error };
    },
    disconnect: async () => {
      c.close();
      return c.exited;
    },
    close: async () => {
      await c.call('Shutdown');
      await c.exited;
    },
  };
}

const variants: Variant[] = [
  { name: '1.0 seqpacket fd', spawn: (args) => RpcTestClient.spawnSeqpacket(args), payload: 'fd' },
  { name: '1.0 seqpacket stream', spawn: (args) => RpcTestClient.spawnSeqpacket(args), payload: 'stream' },
  { name: '1.0 stdio stream', spawn: (args) => RpcTestClient.spawnStdio(args), payload: 'stream' },
];

for (const variant of variants) {
  const wire: WireUnderTest = {
    name: variant.name,
    async connect(extraArgs = []) {
      const c = variant.spawn(extraArgs);
      await c.initialize([variant.payload]);
      return jsonRpcClient(c, variant.payload);
    },
  };
  defineMethodSuite(wire);
}
