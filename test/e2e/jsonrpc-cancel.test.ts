/**
 * `$/cancelRequest` on protocol 1.0 against a registry that stalls: the pending OpenImage is
 * answered with Cancelled (-32800) within a second, its registry request really stops (the
 * connection closes, nothing is retried), and the other requests of the connection go on,
 * including a second OpenImage of the same stalled image that nobody cancelled.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RpcErrorCodes } from '../../protocol/jsonrpc';
import { match, startFaultProxy, type FaultProxy, type SeenRequest } from '../harness/fault-proxy';
import { RpcTestClient } from '../harness/jsonrpc-client';
import { within } from '../harness/method-suite';
import { makeLayer } from '../harness/oci-builder';
import { startRegistry, type RunningRegistry } from '../harness/registry';
import { emptyAuthFilePath, pushImage } from '../harness/registry-images';
import { assertRegistryTools, registrySuiteSkip } from '../harness/registry-tools';

const skip = registrySuiteSkip();

async function waitFor(what: string, condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('1.0 $/cancelRequest of a pending OpenImage', { skip, timeout: 120_000 }, () => {
  let registry: RunningRegistry;
  let proxy: FaultProxy;

  before(async () => {
    assertRegistryTools();
    registry = await startRegistry();
    await pushImage(registry, 'stall/img:v1', { layers: [makeLayer({ stall: 'here' })] });
    proxy = await startFaultProxy({ host: '127.0.0.1', port: registry.port });
  });
  after(async () => {
    await proxy?.close();
    await registry?.stop();
  });

  for (const framing of ['seqpacket', 'stdio'] as const) {
    it(`${framing}: answered Cancelled within a second, the registry request closed and not retried, the rest goes on`, async () => {
      proxy.clearRules();
      proxy.addRule({ match: match.manifest(), action: { kind: 'delay', ms: 4_000 }, times: 2 });
      const from = proxy.requests.length;
      // Nothing in the process would give up on the stall by itself within the test.
      const env = { ...process.env, REGISTRY_AUTH_FILE: emptyAuthFilePath(), LAYERPIPE_STALL_TIMEOUT_MS: '60000', LAYERPIPE_RETRY_ATTEMPTS: '3' };
      const args = ['--tls-verify=false', '--insecure-policy'];
      const c = framing === 'stdio' ? RpcTestClient.spawnStdio(args, env) : RpcTestClient.spawnSeqpacket(args, env);
      try {
        await c.initialize([framing === 'stdio' ? 'stream' : 'fd']);
        const reference = `docker://${proxy.host}/stall/img:v1`;
        const cancelled = c.call('OpenImage', { reference }, 'to-cancel');
        const patient = c.call('OpenImage', { reference }, 'patient');
        const manifests = (): SeenRequest[] => proxy.requests.slice(from).filter((r) => match.manifest()(r));
        await waitFor('both manifest requests', () => manifests().length === 2);
        const started = Date.now();
        await c.notify('$/cancelRequest', { id: 'to-cancel' });
        const answer = await within(2_000, cancelled, 'the cancelled OpenImage');
        const took = Date.now() - started;
        assert.equal(answer.error?.code, RpcErrorCodes.Cancelled, JSON.stringify(answer));
        assert.equal(answer.error?.data?.error_code, 'other', 'a cancellation is not retryable');
        assert.ok(took < 1_000, `answered after ${took} ms`);
        await waitFor('one registry connection to close', () => manifests().some((r) => r.connectionClosedAt !== undefined), 1_000);
        // Other requests are served meanwhile, and the uncancelled open completes.
        assert.equal((await c.call('Nope')).error?.code, RpcErrorCodes.MethodNotFound);
        const opened = await within(15_000, patient, 'the patient OpenImage');
        assert.ok(((opened.result as { image: number }).image) > 0, JSON.stringify(opened));
        await new Promise((resolve) => setTimeout(resolve, 300));
        assert.equal(manifests().length, 2, 'the cancelled request was not tried again');
        // Cancelling a request that is already answered changes nothing.
        await c.notify('$/cancelRequest', { id: 'patient' });
        assert.ok('layers' in ((await c.request('GetLayerInfo', { image: (opened.result as { image: number }).image })) as object));
      } finally {
        c.kill();
        await c.exited;
      }
    });
  }
});
