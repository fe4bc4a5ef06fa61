/**
 * The WebSocket delivery for bench/protocol-1-bench.ts: `layerpipe serve --listen ws://127.0.0.1:0`,
 * the browser client on Node's `ws`, every layer fetched serially and hashed by the client.
 */
import { connectWs, startWsService } from '../test/harness/websocket-service';
import { startCpuCount } from './cpu-time';
import type { WayResult } from './protocol-1-bench';
import { drainVerified, peakRssMiB, type Layer } from './throughput';

export const WEBSOCKET_WAY_LABEL = '1.0 stream (WebSocket)';
/** The credit window asked for: a few chunks more than the default keeps the socket busy while credit travels back. */
const WINDOW = 8 * 1024 * 1024;

export async function runWebSocketWay(ref: string, layers: readonly Layer[]): Promise<WayResult> {
  const service = await startWsService();
  try {
    const proxy = await connectWs(service, WINDOW);
    const image = await proxy.openImage(ref);
    const started = process.hrtime.bigint();
    const cpuSince = startCpuCount(service.child.pid);
    for (const layer of layers) {
      const blob = await proxy.getBlob(image, layer.digest);
      await Promise.all([drainVerified(blob.stream as unknown as AsyncIterable<Uint8Array>, layer), blob.finish()]);
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const cpu = cpuSince();
    const rss = peakRssMiB(service.child.pid);
    await proxy.shutdown();
    return { seconds, peakRssMiB: rss, cpu };
  } finally {
    await service.stop();
  }
}
