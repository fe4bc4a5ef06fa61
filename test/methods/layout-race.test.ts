/**
 * A real race against the real binary: while another process keeps swapping a layout's
 * blobs/ directory with a symlink to an outside directory (renameat2 RENAME_EXCHANGE), many
 * GetBlob calls through bin/layerpipe must never serve a byte from outside. Every GetBlob
 * either delivers the layer, verified, or fails with a clear error. Run once on the kernel
 * path the proxy picks (openat2 where the kernel has it) and once with the openat walk forced.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { ImageProxy, readAll } from '../../clients/typescript';
import { startSwapper, writeSwapFixture, type SwapFixture } from '../harness/hostile-layouts';

const CALLS = Number(process.env.LAYERPIPE_RACE_CALLS ?? 1000);
const CONCURRENCY = 4;

const tmp = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-race-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

interface Tally {
  verified: number;
  outside: number;
  refused: Map<string, number>;
}

/** One GetBlob read to its end, then FinishPipe; classifies what came out. */
async function oneCall(proxy: ImageProxy, id: number, fx: SwapFixture, tally: Tally): Promise<void> {
  let data: Buffer | undefined;
  let failure: Error | undefined;
  try {
    const t = await proxy.getBlob(id, fx.layer.digest, fx.layer.compressed.length);
    const [read, finished] = await Promise.allSettled([readAll(t.stream), t.finish()]);
    if (read.status === 'fulfilled') data = read.value;
    if (finished.status === 'rejected') failure = finished.reason as Error;
  } catch (err) {
    failure = err as Error;
  }
  // Any outside byte counts, even when FinishPipe then reported a digest mismatch.
  if (data !== undefined && data.includes('XXXXXXXX')) tally.outside++;
  if (failure === undefined) {
    assert.ok(data?.equals(fx.layer.compressed), 'a GetBlob that succeeded delivered the layer');
    tally.verified++;
    return;
  }
  const key = failure.message.replace(/sha256\/[0-9a-f]{64}/, 'sha256/HEX');
  tally.refused.set(key, (tally.refused.get(key) ?? 0) + 1);
}

async function race(env: NodeJS.ProcessEnv): Promise<Tally & { swaps: number }> {
  const root = mkdtempSync(path.join(tmp, 'fixture-'));
  const fx = writeSwapFixture(root);
  const proxy = await ImageProxy.spawn({ env: { ...process.env, ...env } });
  const tally: Tally = { verified: 0, outside: 0, refused: new Map() };
  let swaps = 0;
  try {
    await proxy.initialize();
    const id = await proxy.openImage(`oci:${fx.layout}:latest`);
    const swapper = await startSwapper(fx.layout, ...fx.swapNames);
    try {
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < CALLS) {
          next++;
          await oneCall(proxy, id, fx, tally);
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    } finally {
      swaps = await swapper.stop();
    }
    // With the swapping over, the layout serves normally again.
    const t = await proxy.getBlob(id, fx.layer.digest, fx.layer.compressed.length);
    const [data] = await Promise.all([readAll(t.stream), t.finish()]);
    assert.ok(data.equals(fx.layer.compressed));
  } finally {
    assert.equal(await proxy.close(), 0, proxy.stderr);
  }
  return { ...tally, swaps };
}

function report(name: string, r: Tally & { swaps: number }): void {
  const refused = [...r.refused].map(([m, n]) => `${n}× ${JSON.stringify(m)}`).join('; ');
  console.log(`# ${name}: ${CALLS} GetBlob, ${r.swaps} swaps: ${r.verified} verified, ${r.outside} served outside bytes; refused: ${refused || 'none'}`);
}

function check(r: Tally & { swaps: number }): void {
  assert.equal(r.outside, 0, 'no byte from outside the layout is ever served');
  assert.equal(r.verified + [...r.refused.values()].reduce((a, b) => a + b, 0), CALLS);
  assert.ok(r.swaps > 100, `the helper really swapped (${r.swaps})`);
  for (const message of r.refused.keys()) {
    // The only refusal the race can cause: the symlink standing where blobs/ was.
    assert.match(message, /blobs\/sha256\/HEX.*symbolic link/, message);
    assert.doesNotMatch(message, /outside\/blobs/, 'the link target is not quoted');
  }
}

describe('blobs/ swapped for a symlink during GetBlob', () => {
  it(`serves no outside byte in ${CALLS} calls (kernel path of this machine)`, async () => {
    const r = await race({});
    report('default path', r);
    check(r);
  });

  it(`serves no outside byte in ${CALLS} calls (openat walk forced)`, async () => {
    const r = await race({ LAYERPIPE_NO_OPENAT2: '1' });
    report('openat walk', r);
    check(r);
  });
});
