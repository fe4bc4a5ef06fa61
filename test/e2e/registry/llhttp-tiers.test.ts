/**
 * undici's HTTP parser (llhttp, WebAssembly) stays on V8's baseline compiler: a TurboFan
 * recompile of its main function costs ~30 MiB of compiler memory at the first download of a few
 * MiB (server/transports/docker/llhttp-tiers.ts). The proxy runs with V8 tracing its wasm
 * compiles and pulls an 8 MiB blob, which tiers the parser up under V8's default flags.
 */
import { strict as assert } from 'node:assert';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { defaultProxyCommand, ImageProxy } from '../../../clients/typescript';
import { randomLayer, type BuiltLayer } from '../../harness/oci-builder';
import { startRegistry, type RunningRegistry } from '../../harness/registry';
import { emptyAuthFilePath, pushImage } from '../../harness/registry-images';
import { assertRegistryTools, registrySuiteSkip } from '../../harness/registry-tools';

const skip = registrySuiteSkip();

describe('the HTTP parser under a download', { skip, timeout: 120_000 }, () => {
  let registry: RunningRegistry;
  let ref: string;
  let layer: BuiltLayer;
  let dir: string;

  before(async () => {
    assertRegistryTools();
    registry = await startRegistry();
    layer = randomLayer(8 * 1024 * 1024);
    ({ ref } = await pushImage(registry, 'tiers/big:v1', { layers: [layer] }));
    dir = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-tiers-'));
  });

  after(async () => {
    await registry?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('is compiled by Liftoff only, never recompiled by TurboFan', async () => {
    const trace = path.join(dir, 'wasm-compiles.txt');
    const launcher = path.join(dir, 'traced-layerpipe');
    // V8 prints each wasm function's compile on stdout (the proxy's socket is fd 0).
    writeFileSync(launcher, `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} --trace-wasm-compilation-times ${JSON.stringify(defaultProxyCommand())} "$@" > ${JSON.stringify(trace)}\n`);
    chmodSync(launcher, 0o755);
    const proxy = await ImageProxy.spawn({ command: launcher, args: ['--insecure-policy', '--tls-verify=false'], env: { ...process.env, REGISTRY_AUTH_FILE: emptyAuthFilePath() } });
    let bytes = 0;
    try {
      await proxy.initialize();
      const transfer = await proxy.getBlob(await proxy.openImage(ref), layer.digest, layer.compressed.length);
      const finished = transfer.finish();
      for await (const chunk of transfer.stream) bytes += (chunk as Buffer).length;
      await finished;
    } finally {
      assert.equal(await proxy.shutdown(), 0, proxy.stderr);
    }
    assert.equal(bytes, layer.compressed.length);
    const compiles = readFileSync(trace, 'utf8').split('\n').filter((line) => line.startsWith('Compiled function'));
    // The parser was compiled here (a trace that printed nothing would pass the next line).
    assert.ok(compiles.some((line) => line.includes('using Liftoff')), `no Liftoff compile traced:\n${compiles.join('\n')}`);
    assert.deepEqual(compiles.filter((line) => line.includes('TurboFan')), []);
  });
});
