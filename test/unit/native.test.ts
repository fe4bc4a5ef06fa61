/**
 * Tests of the layerpipe_native addon and SeqpacketSocket against the real kernel.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { isNativeError, native } from '../../protocol/seqpacket/native';
import { fdTarget, fdTracker, isCloexec, isOpen } from '../harness/fds';

const track = fdTracker();

function errorCode(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(isNativeError(err), `not an error with a code: ${String(err)}`);
    return err.code;
  }
  assert.fail('expected a throw');
}

describe('descriptors', () => {
  it('seqpacketPair makes connected close-on-exec SOCK_SEQPACKET sockets', () => {
    const [a, b] = track(native.seqpacketPair());
    assert.notEqual(a, b);
    assert.equal(native.socketType(a), 'seqpacket');
    assert.equal(native.socketType(b), 'seqpacket');
    assert.ok(isCloexec(a) && isCloexec(b));
  });

  it('pipe makes a close-on-exec pipe, read end first', () => {
    const [r, w] = track(native.pipe());
    assert.ok(isCloexec(r) && isCloexec(w));
    assert.match(fdTarget(r), /^pipe:/);
    assert.equal(fdTarget(r), fdTarget(w));
    fs.writeSync(w, 'hello');
    const buf = Buffer.alloc(16);
    assert.equal(fs.readSync(r, buf, 0, 16, null), 5);
    assert.equal(buf.subarray(0, 5).toString(), 'hello');
    assert.equal(errorCode(() => native.socketType(r)), 'ENOTSOCK');
  });

  it('setCloexec and setNonBlocking toggle the flags', () => {
    const [r, w] = track(native.pipe());
    native.setCloexec(r, false);
    assert.equal(isCloexec(r), false);
    native.setCloexec(r, true);
    assert.equal(isCloexec(r), true);
    native.setNonBlocking(r, true);
    assert.equal(errorCode(() => fs.readSync(r, Buffer.alloc(1))), 'EAGAIN');
    native.setNonBlocking(r, false);
    fs.writeSync(w, 'x');
    assert.equal(fs.readSync(r, Buffer.alloc(1)), 1);
  });

  it('reports bad descriptors as EBADF errors and bad arguments as TypeErrors', () => {
    const [r, w] = native.pipe();
    native.close(r);
    native.close(w);
    assert.equal(errorCode(() => native.close(r)), 'EBADF');
    assert.equal(errorCode(() => native.close(-1)), 'EBADF');
    assert.equal(errorCode(() => native.sendPacket(r, Buffer.from('x'), [])), 'EBADF');
    assert.equal(errorCode(() => native.recvPacket(r, 10)), 'EBADF');
    assert.equal(errorCode(() => native.setNonBlocking(r, true)), 'EBADF');
    assert.equal(errorCode(() => native.setCloexec(r, true)), 'EBADF');
    assert.equal(errorCode(() => new native.Poller(r, () => {})), 'EBADF');
    const notOpen = 999_999; // r's number may be reused from here on
    assert.equal(isOpen(notOpen), false);
    const [a, b] = track(native.seqpacketPair());
    assert.equal(errorCode(() => native.sendPacket(a, Buffer.from('x'), [notOpen])), 'EBADF');
    assert.equal(native.recvPacket(b, 10), null, 'a failed send delivers nothing');
    assert.throws(() => native.close(1.5), TypeError);
    assert.throws(() => native.sendPacket(a, 'text' as unknown as Buffer, []), TypeError);
    assert.throws(() => native.sendPacket(a, Buffer.from('x'), ['3'] as unknown as number[]), TypeError);
    assert.throws(() => native.recvPacket(b, 0), RangeError);
    assert.equal(errorCode(() => native.takeSocketError(notOpen)), 'EBADF');
    assert.equal(native.takeSocketError(a), null);
    const err = (() => {
      try {
        native.close(notOpen);
      } catch (e) {
        return e as Error & { errno?: number; syscall?: string };
      }
      return null;
    })();
    assert.ok(err);
    assert.equal(err.syscall, 'close');
    assert.equal(err.errno, -9);
    assert.match(err.message, /EBADF/);
  });
});

describe('start-up files (bin/layerpipe)', () => {
  it('mtimeMs is fs.Stats.mtimeMs, and a missing path throws ENOENT', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'layerpipe-start-files-'));
    try {
      const file = path.join(dir, 'f');
      fs.writeFileSync(file, 'x');
      fs.utimesSync(file, 1_000_000.123456, 1_700_000_000.987654);
      assert.equal(native.mtimeMs(file), fs.statSync(file).mtimeMs);
      assert.equal(native.mtimeMs(dir), fs.statSync(dir).mtimeMs);
      assert.equal(errorCode(() => native.mtimeMs(path.join(dir, 'missing'))), 'ENOENT');
      assert.equal(errorCode(() => native.mtimeMs(path.join(file, 'below-a-file'))), 'ENOTDIR');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("readFile gives a regular file's bytes, and nothing but regular files", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'layerpipe-start-files-'));
    try {
      const file = path.join(dir, 'f');
      const bytes = Buffer.from(Array.from({ length: 3 * 4096 + 17 }, (_, i) => (i * 7) & 0xff));
      fs.writeFileSync(file, bytes);
      assert.ok(native.readFile(file).equals(bytes));
      fs.writeFileSync(path.join(dir, 'empty'), '');
      assert.equal(native.readFile(path.join(dir, 'empty')).length, 0);
      assert.equal(errorCode(() => native.readFile(dir)), 'EINVAL');
      assert.equal(errorCode(() => native.readFile(path.join(dir, 'missing'))), 'ENOENT');
      const before = fs.readdirSync('/proc/self/fd').length;
      for (let i = 0; i < 20; i++) native.readFile(file);
      assert.equal(fs.readdirSync('/proc/self/fd').length, before, 'no descriptor stays open');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('packets', () => {
  it('round-trips data with 0, 1 and 2 fds, in order', () => {
    const [a, b] = track(native.seqpacketPair());
    assert.equal(native.sendPacket(a, Buffer.from('none'), []), true);
    const none = native.recvPacket(b, 1024);
    assert.ok(none);
    assert.deepEqual([none.data.toString(), none.fds, none.truncated, none.eof], ['none', [], false, false]);

    const [r1, w1] = track(native.pipe());
    const [r2, w2] = track(native.pipe());
    assert.equal(native.sendPacket(a, Buffer.from('one'), [r1]), true);
    assert.equal(native.sendPacket(b, new Uint8Array([1, 2, 3]), [r1, r2]), true);
    const one = native.recvPacket(b, 1024);
    assert.ok(one);
    track(one.fds);
    assert.equal(one.data.toString(), 'one');
    assert.equal(one.fds.length, 1);
    assert.notEqual(one.fds[0], r1);
    assert.equal(fdTarget(one.fds[0]), fdTarget(r1));
    assert.ok(isCloexec(one.fds[0]), 'received fds are close-on-exec');

    const two = native.recvPacket(a, 1024);
    assert.ok(two);
    track(two.fds);
    assert.deepEqual([...two.data], [1, 2, 3]);
    assert.equal(two.fds.length, 2);
    assert.equal(fdTarget(two.fds[0]), fdTarget(r1), 'data fd first');
    assert.equal(fdTarget(two.fds[1]), fdTarget(r2));
    assert.ok(two.fds.every(isCloexec));
    // Same pipe: what goes into w2 comes out of the received copy of r2.
    fs.writeSync(w2, 'through');
    const buf = Buffer.alloc(16);
    assert.equal(fs.readSync(two.fds[1], buf), 7);
    assert.equal(buf.subarray(0, 7).toString(), 'through');
    void w1;
  });

  it('carries 16 fds in one packet', () => {
    const [a, b] = track(native.seqpacketPair());
    const fds: number[] = [];
    for (let i = 0; i < 8; i++) fds.push(...track(native.pipe()));
    assert.equal(native.sendPacket(a, Buffer.from('many'), fds), true);
    const got = native.recvPacket(b, 64);
    assert.ok(got);
    track(got.fds);
    assert.equal(got.fds.length, 16);
    assert.equal(got.controlTruncated, false);
    assert.deepEqual(got.fds.map(fdTarget), fds.map(fdTarget));
  });

  it('flags a truncated packet and still returns its fds', () => {
    const [a, b] = track(native.seqpacketPair());
    const [r] = track(native.pipe());
    assert.equal(native.sendPacket(a, Buffer.alloc(100, 7), [r]), true);
    assert.equal(native.sendPacket(a, Buffer.from('next'), []), true);
    const got = native.recvPacket(b, 10);
    assert.ok(got);
    track(got.fds);
    assert.equal(got.truncated, true);
    assert.equal(got.data.length, 10);
    assert.equal(got.fds.length, 1);
    const next = native.recvPacket(b, 10);
    assert.ok(next);
    assert.deepEqual([next.data.toString(), next.truncated], ['next', false], 'the rest of a truncated packet is dropped');
  });

  it('tells an empty packet from end of stream', () => {
    const [a, b] = native.seqpacketPair();
    track([b]);
    assert.equal(native.recvPacket(b, 10), null, 'nothing queued: null');
    assert.equal(native.sendPacket(a, Buffer.alloc(0), []), true);
    const empty = native.recvPacket(b, 10);
    assert.ok(empty);
    assert.deepEqual([empty.data.length, empty.eof], [0, false]);
    native.sendPacket(a, Buffer.from('last'), []);
    native.close(a);
    const last = native.recvPacket(b, 10);
    assert.ok(last);
    assert.deepEqual([last.data.toString(), last.eof], ['last', false], 'queued packets come before the end');
    const end = native.recvPacket(b, 10);
    assert.ok(end);
    assert.equal(end.eof, true);
    assert.equal(errorCode(() => native.sendPacket(b, Buffer.from('x'), [])), 'EPIPE');
  });

  it('returns false when the socket buffer is full, and accepts again once drained', () => {
    const [a, b] = track(native.seqpacketPair());
    const packet = Buffer.alloc(4096, 1);
    let sent = 0;
    while (native.sendPacket(a, packet, [])) {
      sent++;
      assert.ok(sent < 100_000, 'the socket never filled up');
    }
    assert.ok(sent > 0);
    assert.equal(native.sendPacket(a, packet, []), false, 'still full');
    let received = 0;
    while (native.recvPacket(b, 8192) !== null) received++;
    assert.equal(received, sent);
    assert.equal(native.sendPacket(a, packet, []), true);
  });

  it('refuses a packet larger than the socket can ever hold with EMSGSIZE', () => {
    const [a] = track(native.seqpacketPair());
    assert.equal(errorCode(() => native.sendPacket(a, Buffer.alloc(8 * 1024 * 1024), [])), 'EMSGSIZE');
  });
});

describe('Poller', () => {
  it('reports readability and writability, and close is idempotent', async () => {
    const [a, b] = track(native.seqpacketPair());
    const events: Array<[number, boolean, boolean]> = [];
    let wake: () => void = () => {};
    const poller = new native.Poller(b, (status, readable, writable) => {
      events.push([status, readable, writable]);
      wake();
    });
    poller.start(false, true);
    await new Promise<void>((resolve) => (wake = resolve));
    assert.deepEqual(events[0], [0, false, true]);
    poller.start(true, false);
    events.length = 0;
    native.sendPacket(a, Buffer.from('ping'), []);
    await new Promise<void>((resolve) => (wake = resolve));
    assert.deepEqual(events[0], [0, true, false]);
    poller.stop();
    poller.close();
    poller.close();
    assert.throws(() => poller.start(true, false), /closed/);
    assert.doesNotThrow(() => poller.stop());
  });

  it('refuses a second Poller on the same fd with EEXIST', () => {
    const [a] = track(native.seqpacketPair());
    const first = new native.Poller(a, () => {});
    first.start(true, false);
    try {
      assert.equal(errorCode(() => new native.Poller(a, () => {})), 'EEXIST');
    } finally {
      first.close();
    }
    const again = new native.Poller(a, () => {});
    again.close();
  });

  const nativeIndex = path.resolve(__dirname, '..', '..', 'protocol', 'seqpacket', 'native.js');
  function runScript(body: string, timeoutMs = 15_000, loadNative = true) {
    const script = loadNative ? `const { native } = require(${JSON.stringify(nativeIndex)});\n${body}` : body;
    return spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: timeoutMs });
  }

  it('keeps the process alive while started, and not after stop, unref or close', () => {
    // An unref'd timer fires only if something else keeps the loop running.
    const probe = `setTimeout(() => { console.log('alive'); process.exit(0); }, 300).unref();`;
    const started = runScript(`const [a, b] = native.seqpacketPair(); new native.Poller(b, () => {}).start(true, false); ${probe}`);
    assert.equal(started.stdout.trim(), 'alive', `a started Poller keeps the loop running: ${started.stderr}`);
    for (const release of ['p.stop()', 'p.unref()', 'p.close()', 'p.close(); p.close()', 'p.start(false, false)']) {
      const r = runScript(`const [a, b] = native.seqpacketPair(); const p = new native.Poller(b, () => {}); p.start(true, false);
        setTimeout(() => { ${release}; }, 50); ${probe}`);
      assert.deepEqual([r.status, r.stdout.trim()], [0, ''], `${release}: ${r.stderr}`);
    }
    const gc = runScript(`const [a, b] = native.seqpacketPair(); for (let i = 0; i < 1000; i++) { new native.Poller(b, () => {}).close(); }
      let p = new native.Poller(b, () => {}); p = null; setTimeout(() => {}, 50);`);
    assert.equal(gc.status, 0, gc.stderr);
  });

  it('surfaces an exception thrown by the callback as an uncaught exception', () => {
    const r = runScript(`const [a, b] = native.seqpacketPair();
      process.on('uncaughtException', (err) => { console.log('caught:' + err.message); process.exit(7); });
      const p = new native.Poller(b, () => { throw new Error('from the poll callback'); });
      p.start(true, false); native.sendPacket(a, Buffer.from('x'), []);`);
    assert.equal(r.status, 7, r.stderr);
    assert.match(r.stdout, /caught:from the poll callback/);
    const crash = runScript(`const [a, b] = native.seqpacketPair();
      new native.Poller(b, () => { throw new Error('unhandled in callback'); }).start(true, false);
      native.sendPacket(a, Buffer.from('x'), []);`);
    assert.notEqual(crash.status, 0);
    assert.match(crash.stderr, /unhandled in callback/);
  });

  it('closes its handles when a worker that owns them goes away', () => {
    // Node unloads a worker's addons at exit: an open uv handle must be closed before that.
    const r = runScript(`const { Worker } = require('node:worker_threads');
      const body = 'const { native } = require(' + JSON.stringify(${JSON.stringify(nativeIndex)}) + ');' +
        'const { workerData, parentPort } = require("node:worker_threads");' +
        'const [a, b] = native.seqpacketPair();' +
        'for (let i = 0; i < 20; i++) { const p = new native.Poller(b, () => {}); if (i % 2) p.close(); else { p.start(true, false); p.stop(); } }' +
        'new native.Poller(b, () => {}).start(true, false); new native.Poller(a, () => {}).start(true, true);' +
        'parentPort.postMessage("ready"); if (workerData === "exit") process.exit(0);';
      (async () => {
        for (const how of ['terminate', 'exit', 'terminate', 'exit']) {
          const w = new Worker(body, { eval: true, workerData: how });
          await new Promise((resolve) => w.once('message', resolve));
          if (how === 'terminate') await w.terminate(); else await new Promise((resolve) => w.once('exit', resolve));
        }
        console.log('done');
      })();`, 20_000, false); // not loaded by the main thread, so the worker's exit really unloads it
    assert.equal(r.status, 0, `status ${r.status} signal ${r.signal}: ${r.stderr}`);
    assert.equal(r.stdout.trim(), 'done');
  });

  it('runs microtasks queued by the callback before the next loop turn', () => {
    const r = runScript(`const [a, b] = native.seqpacketPair();
      const order = [];
      const p = new native.Poller(b, () => { p.close(); Promise.resolve().then(() => order.push('microtask')); process.nextTick(() => order.push('tick')); setImmediate(() => { order.push('immediate'); console.log(order.join(',')); }); });
      p.start(true, false); native.sendPacket(a, Buffer.from('x'), []);`);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'tick,microtask,immediate');
  });
});
