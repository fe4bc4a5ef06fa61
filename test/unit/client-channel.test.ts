/**
 * ImageProxy over a Channel that is no socket: an in-memory peer answering from a script.
 * Shows that the client needs nothing but the Channel interface, and pins down how it treats
 * one: replies in order, a refused packet, a peer that goes away, close.
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import {
  ImageProxy, METHODS, PacketRefusedError, ProxyClosedError, ProxyError, ProxyProtocolError,
  type Channel, type ChannelHandlers, type PeerProcess,
} from '../../clients/typescript';

type Answer = Record<string, unknown> | 'refuse' | 'silence';

/** Answers each request with the next scripted reply (filled in with the wire's defaults). */
class ScriptedChannel implements Channel {
  readonly peerName = 'scripted-peer';
  readonly maxPacketSize = 1024;
  readonly process: PeerProcess | null = null;
  readonly sent: Array<{ method: string; args: unknown[] }> = [];
  closed = false;
  private handlers: ChannelHandlers | null = null;

  constructor(private readonly script: Answer[]) {}

  start(handlers: ChannelHandlers): void {
    this.handlers = handlers;
  }

  async send(data: Buffer): Promise<void> {
    if (this.closed) throw new Error('closed');
    this.sent.push(JSON.parse(data.toString()) as { method: string; args: unknown[] });
    const answer = this.script.shift() ?? 'silence';
    if (answer === 'refuse') throw new PacketRefusedError('too large');
    if (answer === 'silence') return;
    const reply = { success: true, value: null, pipeid: 0, error_code: '', error: '', ...answer };
    // Replies come later, as from a real peer.
    setImmediate(() => this.handlers?.packet({ data: Buffer.from(JSON.stringify(reply)), fds: [], truncated: false }));
  }

  /** The peer hangs up. */
  hangUp(): void {
    this.handlers?.gone();
  }

  async describeGone(): Promise<string> {
    return 'scripted-peer hung up';
  }

  close(): void {
    this.closed = true;
  }

  async waitClosed(): Promise<void> {}
}

describe('ImageProxy over another Channel', () => {
  it('calls through the channel, replies matched in request order', async () => {
    const channel = new ScriptedChannel([
      { value: '0.2.8' },
      { value: 7 },
      { success: false, error: 'no such image', error_code: 'other' },
      { value: 0 },
    ]);
    const proxy = ImageProxy.connect(channel);
    assert.equal(proxy.command, 'scripted-peer');
    assert.deepEqual(proxy.args, []);
    assert.equal(proxy.pid, undefined);
    assert.equal(await proxy.initialize(), '0.2.8');
    const [opened, missing, optional] = await Promise.allSettled([
      proxy.openImage('oci:/a'), proxy.openImage('oci:/b'), proxy.openImageOptional('oci:/c'),
    ]);
    assert.deepEqual(opened, { status: 'fulfilled', value: 7 });
    assert.ok(missing.status === 'rejected' && missing.reason instanceof ProxyError);
    assert.deepEqual(optional, { status: 'fulfilled', value: null });
    assert.deepEqual(channel.sent.map((r) => r.method), ['Initialize', 'OpenImage', 'OpenImage', 'OpenImageOptional']);
    assert.equal(await proxy.shutdown(), null, 'no process, no exit status');
    assert.equal(channel.sent.at(-1)?.method, 'Shutdown');
    assert.ok(channel.closed);
  });

  it('fails only the refused request when the channel refuses a packet', async () => {
    const channel = new ScriptedChannel([{ value: '0.2.8' }, 'refuse', { value: 3 }]);
    const proxy = ImageProxy.connect(channel);
    await proxy.initialize();
    await assert.rejects(proxy.openImage('oci:/big'), ProxyProtocolError);
    assert.equal(await proxy.openImage('oci:/a'), 3);
    await proxy.close();
  });

  it('fails pending and later calls with why the peer went', async () => {
    const channel = new ScriptedChannel([{ value: '0.2.8' }, 'silence']);
    const proxy = ImageProxy.connect(channel);
    await proxy.initialize();
    const pending = proxy.call(METHODS.OpenImage, ['oci:/a']);
    channel.hangUp();
    const expected = (err: unknown) => err instanceof ProxyClosedError && /scripted-peer hung up/.test(err.message);
    await assert.rejects(pending, expected);
    await assert.rejects(proxy.openImage('oci:/b'), expected);
    assert.ok(channel.closed, 'the client closes a channel whose peer has gone');
    assert.equal(await proxy.waitExit(), null);
  });

  it('refuses a truncated reply, naming the channel\'s limit', async () => {
    const channel = new ScriptedChannel([]);
    const proxy = ImageProxy.connect(channel);
    const handlers = (channel as unknown as { handlers: ChannelHandlers }).handlers;
    const init = proxy.initialize();
    handlers.packet({ data: Buffer.from('{"succ'), fds: [], truncated: true });
    await assert.rejects(init, /longer than 1024 bytes/);
    await proxy.close();
  });
});
