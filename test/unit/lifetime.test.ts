/**
 * Lifetimes (server/service/lifetime.ts): children end with their parent, after its signal; a
 * released child does not; a signal asked for late is already aborted with the reason; a signal
 * parent ends a lifetime as a lifetime parent does; ending twice keeps the first reason.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Lifetime } from '../../server/service/lifetime';

describe('Lifetime', () => {
  it('ends its children with it, its own signal first', () => {
    const parent = new Lifetime();
    const child = new Lifetime(parent);
    const grandchild = new Lifetime(child);
    const order: string[] = [];
    parent.signal.addEventListener('abort', () => order.push(`parent aborted, child ended: ${child.ended}`));
    grandchild.signal.addEventListener('abort', () => order.push('grandchild'));
    const reason = new Error('closed');
    parent.end(reason);
    assert.deepEqual(order, ['parent aborted, child ended: false', 'grandchild']);
    assert.equal(child.ended, true);
    assert.equal(grandchild.signal.reason, reason);
    assert.equal(parent.childCount, 0);
  });

  it('makes its signal when asked, aborted already if it ended', () => {
    const lifetime = new Lifetime();
    lifetime.end('gone');
    lifetime.end('again');
    assert.equal(lifetime.signal.aborted, true);
    assert.equal(lifetime.signal.reason, 'gone');
    const late = new Lifetime(lifetime);
    assert.equal(late.ended, true);
    assert.equal(late.signal.reason, 'gone');
  });

  it('lets a released child go: it neither counts nor ends with the parent', () => {
    const parent = new Lifetime();
    const done = new Lifetime(parent);
    const running = new Lifetime(parent);
    assert.equal(parent.childCount, 2);
    done.release();
    assert.equal(parent.childCount, 1);
    parent.end('stop');
    assert.equal(done.ended, false);
    assert.equal(running.ended, true);
  });

  it('ends with a parent signal, and stops listening to it once released', () => {
    const controller = new AbortController();
    const owned = new Lifetime(controller.signal);
    const released = new Lifetime(controller.signal);
    released.release();
    controller.abort('owner gone');
    assert.equal(owned.signal.reason, 'owner gone');
    assert.equal(released.ended, false);
    assert.equal(new Lifetime(controller.signal).ended, true);
  });
});
