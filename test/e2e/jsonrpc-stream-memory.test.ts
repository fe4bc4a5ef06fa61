/**
 * A stream payload with a slow reader: the server never sends past the credit the client has
 * granted, and its peak RSS stays flat while a blob far larger than it streams in-band (the
 * skopeo wire's bound from test/methods/memory.test.ts).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { RpcTestClient } from '../harness/jsonrpc-client';
import { within } from '../harness/method-suite';
import { writeBigLayout } from '../harness/big-layout';

const SIZE = 128 * 1024 * 1024;
/** The reader gives room back in steps this big, each after a pause. */
const GRANT_STEP = 256 * 1024;
const WINDOW = 1024 * 1024;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-jsonrpc-memory-'));
const layout = path.join(tmp, 'big');
let digest = '';

function writeLayout(): void {
  digest = writeBigLayout(layout, tmp, SIZE);
}

before(writeLayout);
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('1.0 stream payload memory', () => {
  it(`a slow reader of ${SIZE / 1024 / 1024} MiB: never past the credit, server RSS flat`, { timeout: 300_000 }, async () => {
    const c = RpcTestClient.spawnSeqpacket();
    try {
      await c.initialize(['stream'], { window: WINDOW });
      const { image } = await c.request<{ image: number }>('OpenImage', { reference: `oci:${layout}` });
      const hash = createHash('sha256');
      let received = 0;
      let granted = WINDOW;
      let mostAhead = 0;
      const queue: Buffer[] = [];
      let wake: (() => void) | undefined;
      let ended: Record<string, unknown> | undefined;
      c.on(({ message }) => {
        if (message.method === 'transfer/data') {
          const chunk = Buffer.from((message.params as { data: string }).data, 'base64');
          received += chunk.length;
          mostAhead = Math.max(mostAhead, received - (granted - WINDOW));
          assert.ok(received <= granted, `received ${received} bytes with ${granted} granted`);
          queue.push(chunk);
        } else if (message.method === 'transfer/end') {
          ended = message.params as Record<string, unknown>;
        } else return;
        wake?.();
      });
      const r = await c.call('GetBlob', { image, digest, size: SIZE });
      const transfer = (r.result as { transfer: number }).transfer;
      const finished = c.call('FinishTransfer', { transfer });
      // The slow reader: gives room back 256 KiB at a time, each after a 2 ms pause.
      let consumed = 0;
      let owed = 0;
      await within(240_000, (async () => {
        while (consumed < SIZE) {
          const chunk = queue.shift();
          if (chunk === undefined) {
            await new Promise<void>((resolve) => {
              wake = resolve;
            });
            continue;
          }
          hash.update(chunk);
          consumed += chunk.length;
          owed += chunk.length;
          if (owed < GRANT_STEP && consumed < SIZE) continue;
          await new Promise((resolve) => setTimeout(resolve, 2));
          granted += owed;
          await c.notify('transfer/credit', { transfer, bytes: owed });
          owed = 0;
        }
      })(), 'the slow reader');
      assert.equal((await finished).error, undefined);
      assert.deepEqual(ended, { transfer });
      assert.equal(`sha256:${hash.digest('hex')}`, digest);
      const status = readFileSync(`/proc/${c.pid}/status`, 'utf8');
      const peakMiB = Number(/^VmHWM:\s+(\d+) kB$/m.exec(status)![1]) / 1024;
      process.stdout.write(`# server peak RSS streaming ${SIZE / 1024 / 1024} MiB in-band to a slow reader: ${peakMiB.toFixed(1)} MiB; most bytes ahead of the reader: ${mostAhead}\n`);
      assert.ok(mostAhead <= WINDOW, `${mostAhead} bytes ahead of the reader with a ${WINDOW}-byte window`);
      assert.ok(peakMiB < 160, `server peak RSS ${peakMiB.toFixed(1)} MiB`);
    } finally {
      c.kill();
      await c.exited;
    }
  });
});
