/**
 * Memory while a blob far larger than the proxy streams through the skopeo wire: the peak RSS
 * stays flat. An oci: blob into a pipe is copied by the addon (server/transfer/pipe-copy.ts:
 * pread into a fixed ring, no JavaScript buffer per chunk), so it stays flat even without the
 * transfer memory guard (server/transfer/memory-guard.ts), which only matters where chunks are
 * JavaScript buffers (registry responses, FIFO and in-band sinks).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ImageProxy } from '../../clients/typescript';
import { writeBigLayout } from '../harness/big-layout';

const SIZE = 512 * 1024 * 1024;
/** Peak RSS allowed (measured here: 61.5-62.2 MiB with or without the guard; 86 MiB before the addon's copy, unguarded). */
const FLAT_PEAK_MIB = 80;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-memory-'));
const layout = path.join(tmp, 'big');
let digest = '';

function writeLayout(): void {
  digest = writeBigLayout(layout, tmp, SIZE);
}

/** Streams the layer through a fresh proxy; the proxy's peak RSS in MiB. */
async function peakWhileStreaming(args: readonly string[]): Promise<number> {
  const proxy = await ImageProxy.spawn({ args });
  try {
    await proxy.initialize();
    const id = await proxy.openImage(`oci:${layout}`);
    const t = await proxy.getBlob(id, digest, SIZE);
    let seen = 0;
    t.stream.on('data', (c: Buffer) => { seen += c.length; });
    await Promise.all([new Promise((resolve) => t.stream.on('end', resolve)), t.finish()]);
    assert.equal(seen, SIZE);
    const status = readFileSync(`/proc/${proxy.pid}/status`, 'utf8');
    return Number(/^VmHWM:\s+(\d+) kB$/m.exec(status)![1]) / 1024;
  } finally {
    await proxy.close();
  }
}

before(writeLayout);
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('memory', () => {
  it('stays flat while 512 MiB streams, with or without the memory guard', async () => {
    const guarded = await peakWhileStreaming([]);
    const unguarded = await peakWhileStreaming(['--memory-guard=false']);
    process.stdout.write(`# proxy peak RSS streaming 512 MiB: ${guarded.toFixed(1)} MiB with the guard, ${unguarded.toFixed(1)} MiB without\n`);
    assert.ok(guarded < FLAT_PEAK_MIB, `proxy peak RSS ${guarded.toFixed(1)} MiB while streaming 512 MiB`);
    assert.ok(unguarded < FLAT_PEAK_MIB, `proxy peak RSS ${unguarded.toFixed(1)} MiB while streaming 512 MiB without the guard`);
  });
});
