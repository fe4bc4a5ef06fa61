/**
 * SeqpacketSocket (protocol/seqpacket/socket.ts) against the real kernel: ordered sends through
 * a full buffer, descriptors passed and closed, end of stream, errors.
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { native } from '../../protocol/seqpacket/native';
import { SeqpacketSocket, type Packet } from '../../protocol/seqpacket/socket';
import { fdTarget, fdTracker, isOpen, tick } from '../harness/fds';

const track = fdTracker();

describe('SeqpacketSocket', () => {
  function pair(): [SeqpacketSocket, SeqpacketSocket] {
    const [a, b] = native.seqpacketPair();
    return [new SeqpacketSocket(a), new SeqpacketSocket(b)];
  }
  function collect(socket: SeqpacketSocket): Packet[] {
    const got: Packet[] = [];
    socket.on('packet', (p) => got.push(p));
    return got;
  }

  it('sends in order through a full socket buffer and delivers every packet', async () => {
    const [a, b] = pair();
    const count = 600;
    let resolved = 0;
    const sends: Promise<void>[] = [];
    for (let i = 0; i < count; i++) {
      const data = Buffer.alloc(2048, i % 256);
      data.writeUInt32BE(i, 0);
      sends.push(a.send(data).then(() => void resolved++));
    }
    for (let i = 0; i < 5; i++) await tick();
    assert.ok(resolved > 0 && resolved < count, `the buffer should fill up (resolved ${resolved} of ${count})`);
    const got = collect(b);
    await Promise.all(sends);
    while (got.length < count) await tick();
    assert.deepEqual(got.map((p) => p.data.readUInt32BE(0)), [...Array(count).keys()]);
    assert.ok(got.every((p) => p.data.length === 2048 && !p.truncated && p.fds.length === 0));
    a.close();
    b.close();
  });

  it('passes fds, closes the sender copies once sent, and truncates long packets', async () => {
    const [a, b] = native.seqpacketPair();
    const sa = new SeqpacketSocket(a);
    const sb = new SeqpacketSocket(b, { maxPacketSize: 8 });
    const got = collect(sb);
    const [r, w] = native.pipe();
    const target = fdTarget(r);
    await sa.send(Buffer.from('0123456789'), [r, w]);
    assert.equal(isOpen(r) || isOpen(w), false, 'sent fds are closed by the socket');
    while (got.length < 1) await tick();
    track(got[0].fds);
    assert.equal(got[0].truncated, true);
    assert.equal(got[0].data.toString(), '01234567');
    assert.deepEqual(got[0].fds.map(fdTarget), [target, target]);
    sa.close();
    sb.close();
  });

  it('emits end when the peer closes, also when it left packets unread', async () => {
    const [a, b] = pair();
    const ended = new Promise<void>((resolve) => b.once('end', resolve));
    collect(b);
    a.close();
    await ended;
    b.close();

    // The peer closes with our packet unread: the kernel reports ECONNRESET (and poll POLLERR),
    // yet what the peer sent before closing still arrives, then the end.
    const [c, d] = pair();
    await c.send(Buffer.from('never read'));
    await d.send(Buffer.from('goodbye'));
    const errors: Error[] = [];
    c.on('error', (e) => errors.push(e));
    const cEnded = new Promise<void>((resolve) => c.once('end', resolve));
    d.close();
    for (let i = 0; i < 3; i++) await tick();
    const fromD = collect(c);
    await cEnded;
    assert.deepEqual(errors, []);
    assert.deepEqual(fromD.map((p) => p.data.toString()), ['goodbye']);
    await assert.rejects(c.send(Buffer.from('x')), (err: Error & { code?: string }) => err.code === 'EPIPE');
    c.close();
  });

  it('rejects sends after close and closes their fds', async () => {
    const [a, b] = pair();
    a.close();
    a.close();
    const [r, w] = native.pipe();
    await assert.rejects(a.send(Buffer.from('x'), [r, w]), (err: Error & { code?: string }) => err.code === 'ERR_SOCKET_CLOSED');
    assert.equal(isOpen(r) || isOpen(w), false);
    b.close();
  });

  it('fails only the oversized packet and keeps sending the others', async () => {
    const [a, b] = pair();
    const got = collect(b);
    const first = a.send(Buffer.from('first'));
    const huge = a.send(Buffer.alloc(8 * 1024 * 1024));
    const last = a.send(Buffer.from('last'));
    await first;
    await assert.rejects(huge, (err: Error & { code?: string }) => err.code === 'EMSGSIZE');
    await last;
    while (got.length < 2) await tick();
    assert.deepEqual(got.map((p) => p.data.toString()), ['first', 'last']);
    a.close();
    b.close();
  });

  it('does not read while paused', async () => {
    const [a, b] = native.seqpacketPair();
    const sa = new SeqpacketSocket(a);
    const sb = new SeqpacketSocket(b);
    sb.pause();
    const got = collect(sb);
    await sa.send(Buffer.from('held'));
    for (let i = 0; i < 5; i++) await tick();
    assert.equal(got.length, 0);
    sb.resume();
    while (got.length < 1) await tick();
    assert.equal(got[0].data.toString(), 'held');
    sa.close();
    sb.close();
  });
});
