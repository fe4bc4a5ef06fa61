/**
 * The CPU-shortage check that keeps parallel ranges off a machine with no CPU to spare
 * (server/transports/docker/cpu-contention.ts), against the real kernel's /proc/stat: every CPU
 * kept busy by worker threads reads as short, and so does a busy event loop.
 */
import { strict as assert } from 'node:assert';
import os from 'node:os';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { cpuUseNow, cpuWasShort, loopWasBusy } from '../../server/transports/docker/cpu-contention';

const SPIN_MS = 400;
const spinFor = (ms: number): void => {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // Busy on purpose.
  }
};

describe('CPU shortage: what a slow sample is blamed on', () => {
  it('reads every CPU kept busy as short', async () => {
    const source = `const until = Date.now() + ${SPIN_MS + 300}; while (Date.now() < until) {}`;
    const workers = Array.from({ length: os.availableParallelism() }, () => new Worker(source, { eval: true }));
    try {
      await new Promise((resolve) => setTimeout(resolve, 100)); // the workers are running
      const since = cpuUseNow();
      await new Promise((resolve) => setTimeout(resolve, SPIN_MS));
      assert.equal(loopWasBusy(since.loop), false, 'this loop only waited');
      assert.equal(cpuWasShort(since), true, 'no CPU idle while every one spun');
    } finally {
      await Promise.all(workers.map((w) => w.terminate()));
    }
  });

  it('reads a busy event loop as short', () => {
    const since = cpuUseNow();
    spinFor(200);
    assert.equal(loopWasBusy(since.loop), true);
    assert.equal(cpuWasShort(since), true);
  });
});
