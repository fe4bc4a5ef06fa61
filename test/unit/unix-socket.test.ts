/**
 * The addon's named endpoints (unix-socket.c): a listening SEQPACKET socket bound 0600 whatever
 * the umask, non-blocking accept and connect, packets and fds across an accepted connection,
 * shutdownSocket, mkfifo with an exact mode, and the errors each one reports.
 */
import assert from 'node:assert/strict';
import { lstatSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { native } from '../../protocol/seqpacket/native';
import { fdTracker } from '../harness/fds';

const dir = mkdtempSync(path.join(os.tmpdir(), 'unix-socket-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const track = fdTracker();
const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
};

describe('unix-socket natives', () => {
  it('binds a listening SEQPACKET socket with mode 0600 even under a permissive umask', () => {
    const old = process.umask(0o000);
    let listener: number;
    try {
      [listener] = track([native.listenSeqpacket(path.join(dir, 'a.sock'), 4)]);
    } finally {
      process.umask(old);
    }
    assert.equal(lstatSync(path.join(dir, 'a.sock')).mode & 0o777, 0o600);
    assert.equal(native.socketType(listener), 'seqpacket');
    assert.equal(native.isListeningSocket(listener), true);
    assert.equal(codeOf(() => native.listenSeqpacket(path.join(dir, 'a.sock'), 4)), 'EADDRINUSE');
  });

  it('accepts nothing when nobody connects, then a connection that carries packets and fds both ways', () => {
    const socketPath = path.join(dir, 'b.sock');
    const [listener] = track([native.listenSeqpacket(socketPath, 4)]);
    assert.equal(native.acceptSeqpacket(listener), null);
    const [client] = track([native.connectSeqpacket(socketPath)]);
    const accepted = native.acceptSeqpacket(listener);
    assert.ok(accepted !== null);
    track([accepted]);
    assert.equal(native.isListeningSocket(accepted), false);
    const [r, w] = track(native.pipe());
    assert.equal(native.sendPacket(client, Buffer.from('hello'), [w]), true);
    const packet = native.recvPacket(accepted, 1024)!;
    track(packet.fds);
    assert.equal(packet.data.toString(), 'hello');
    assert.equal(packet.fds.length, 1);
    assert.ok(r > 0);
    native.shutdownSocket(accepted);
    assert.equal(native.recvPacket(client, 1024)?.eof, true, 'the peer sees the end after shutdownSocket');
  });

  it('reports ECONNREFUSED, ENOENT, ENAMETOOLONG and ENOTSOCK', () => {
    const stale = path.join(dir, 'stale.sock');
    native.close(native.listenSeqpacket(stale, 1));
    assert.equal(codeOf(() => native.connectSeqpacket(stale)), 'ECONNREFUSED');
    assert.equal(codeOf(() => native.connectSeqpacket(path.join(dir, 'missing.sock'))), 'ENOENT');
    assert.equal(codeOf(() => native.listenSeqpacket(path.join(dir, 'x'.repeat(120)), 1)), 'ENAMETOOLONG');
    const [r] = track(native.pipe());
    assert.equal(codeOf(() => native.isListeningSocket(r)), 'ENOTSOCK');
  });

  it('makes a FIFO with exactly the mode asked, whatever the umask, and refuses an existing path', () => {
    const old = process.umask(0o077);
    try {
      native.mkfifo(path.join(dir, 'f'), 0o640);
    } finally {
      process.umask(old);
    }
    const st = statSync(path.join(dir, 'f'));
    assert.ok(st.isFIFO());
    assert.equal(st.mode & 0o777, 0o640);
    assert.equal(codeOf(() => native.mkfifo(path.join(dir, 'f'), 0o600)), 'EEXIST');
  });
});
