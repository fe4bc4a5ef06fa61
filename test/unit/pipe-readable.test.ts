/**
 * The TypeScript client's pipe reader (clients/typescript/pipes.ts) against a real pipe and a
 * writer in another process: reads are large (so the proxy writing the pipe is woken less
 * often), each chunk keeps its bytes after later reads land in the same slab, and closing
 * early releases the fd.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { fstatSync } from 'node:fs';
import { describe, it } from 'node:test';
import { pipeReadable } from '../../clients/typescript/pipes';
import { native } from '../../protocol/seqpacket/native';

const MiB = 1024 * 1024;

/** A pipe whose write end a child process fills with `data` (from its stdin) and closes. */
function pipeFedBy(data: Buffer): number {
  const [readFd, writeFd] = native.pipe();
  native.setPipeSize(writeFd, MiB);
  const child = spawn('cat', { stdio: ['pipe', writeFd, 'inherit'] });
  native.close(writeFd);
  child.stdin!.on('error', () => {}); // EPIPE once a test closes the read end early
  child.stdin!.end(data);
  return readFd;
}

describe('pipeReadable', () => {
  it('reads a full pipe in large chunks, each keeping its own bytes', async () => {
    const data = randomBytes(24 * MiB + 4097);
    const stream = pipeReadable(pipeFedBy(data));
    const chunks: Buffer[] = [];
    // Each 'data' event is one read; pausing after the first ones lets the pipe fill up behind them.
    stream.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      if (chunks.length < 4) {
        stream.pause();
        setTimeout(() => stream.resume(), 30);
      }
    });
    await new Promise((resolve, reject) => stream.on('end', resolve).on('error', reject));
    const joined = Buffer.concat(chunks);
    assert.equal(joined.length, data.length);
    assert.equal(createHash('sha256').update(joined).digest('hex'), createHash('sha256').update(data).digest('hex'), 'no chunk overwritten by a later read');
    const largest = Math.max(...chunks.map((c) => c.length));
    assert.ok(largest > 64 * 1024, `reads larger than Node's default 64 KiB (largest ${largest})`);
    assert.ok(chunks.every((c) => c.length <= MiB));
  });

  it('closes the fd when destroyed before the end', async () => {
    const fd = pipeFedBy(randomBytes(4 * MiB));
    const stream = pipeReadable(fd);
    for await (const chunk of stream) {
      assert.ok((chunk as Buffer).length > 0);
      break; // leaving the loop destroys the stream
    }
    await new Promise((resolve) => setImmediate(resolve));
    assert.throws(() => fstatSync(fd), /EBADF/);
  });
});
