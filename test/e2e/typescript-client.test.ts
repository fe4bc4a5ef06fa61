/**
 * The TypeScript client: reply checks on their own, then end to end against real proxies
 * ($LAYERPIPE_TEST_PROXY alone, else skopeo and bin/layerpipe; one that is missing is skipped
 * with a hint, failed under CI=true).
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { ProxyProtocolError } from '../../clients/typescript';
import { checkDataKind, checkValue, decodeReply, isSupportedVersion, parseLayerInfo, parseRawBlobError } from '../../clients/typescript/reply';
import { METHODS } from '../../protocol/methods';
import { defineClientSuite, proxyCommandsFromEnv } from '../harness/wire-client-suite';

const reply = (o: Record<string, unknown>) => Buffer.from(JSON.stringify(o));

describe('client reply checks', () => {
  it('requires success, error, pipeid and value; error_code is optional', () => {
    const ok = decodeReply('X', reply({ success: true, value: 3, pipeid: 0, error: '' }));
    assert.deepEqual(ok, { success: true, value: 3, pipeid: 0, error: '', errorCode: '' });
    const failed = decodeReply('X', reply({ success: false, value: null, pipeid: 0, error: 'boom', error_code: 'retryable', extra: 1 }));
    assert.equal(failed.errorCode, 'retryable');
    for (const bad of [
      reply({ value: 1, pipeid: 0, error: '' }),
      reply({ success: true, pipeid: 0, error: '' }),
      reply({ success: true, value: 1, error: '' }),
      reply({ success: true, value: 1, pipeid: 0 }),
      reply({ success: true, value: 1, pipeid: -1, error: '' }),
      reply({ success: true, value: 1, pipeid: 1.5, error: '' }),
      reply({ success: 'yes', value: 1, pipeid: 0, error: '' }),
      reply({ success: false, value: null, pipeid: 0, error: 'x', error_code: 'EAGAIN' }),
      Buffer.from('not json'),
      Buffer.from('[]'),
    ]) {
      assert.throws(() => decodeReply('X', bad), ProxyProtocolError, bad.toString());
    }
  });

  it('checks fds and pipeid against the method\'s DataKind', () => {
    checkDataKind(METHODS.OpenImage, 0, 0);
    checkDataKind(METHODS.GetManifest, 7, 1);
    checkDataKind(METHODS.GetRawBlob, 0, 2);
    assert.throws(() => checkDataKind(METHODS.OpenImage, 1, 0), ProxyProtocolError);
    assert.throws(() => checkDataKind(METHODS.OpenImage, 0, 1), ProxyProtocolError);
    assert.throws(() => checkDataKind(METHODS.GetManifest, 0, 1), ProxyProtocolError);
    assert.throws(() => checkDataKind(METHODS.GetManifest, 7, 0), ProxyProtocolError);
    assert.throws(() => checkDataKind(METHODS.GetManifest, 7, 2), ProxyProtocolError);
    assert.throws(() => checkDataKind(METHODS.GetRawBlob, 3, 2), ProxyProtocolError);
    assert.throws(() => checkDataKind(METHODS.GetRawBlob, 0, 1), ProxyProtocolError);
    assert.throws(() => checkDataKind(METHODS.Shutdown, 0, 0), ProxyProtocolError);
  });

  it('checks values by method', () => {
    assert.equal(checkValue(METHODS.OpenImage, 4), 4);
    assert.throws(() => checkValue(METHODS.OpenImage, 0), ProxyProtocolError, 'image ids are never 0');
    assert.equal(checkValue(METHODS.OpenImageOptional, 0), 0);
    assert.equal(checkValue(METHODS.GetBlob, -1), -1);
    assert.throws(() => checkValue(METHODS.GetBlob, -2), ProxyProtocolError);
    assert.throws(() => checkValue(METHODS.GetManifest, 5), ProxyProtocolError);
    assert.equal(checkValue(METHODS.CloseImage, 'ignored'), null);
    assert.throws(() => checkValue(METHODS.GetLayerInfo, [{ digest: 'd', size: 1 }]), ProxyProtocolError);
    assert.deepEqual(parseLayerInfo(Buffer.from('[{"digest":"d","size":-1,"media_type":"m"}]')), [{ digest: 'd', size: -1, media_type: 'm' }]);
    assert.throws(() => parseLayerInfo(Buffer.from('{}')), ProxyProtocolError);
  });

  it('accepts protocol versions ^0.2.3 only', () => {
    for (const v of ['0.2.3', '0.2.8', '0.2.10']) assert.ok(isSupportedVersion(v), v);
    for (const v of ['0.2.2', '0.3.0', '1.2.3', '0.2', '0.2.8-dev', '']) assert.ok(!isSupportedVersion(v), v);
  });

  it('reads GetRawBlob error pipes', () => {
    assert.equal(parseRawBlobError(Buffer.alloc(0)), null);
    assert.deepEqual(parseRawBlobError(Buffer.from('{"code":"EPIPE","message":"m"}')), { code: 'EPIPE', message: 'm' });
    assert.throws(() => parseRawBlobError(Buffer.from('{"code":"nope","message":"m"}')), ProxyProtocolError);
    assert.throws(() => parseRawBlobError(Buffer.from('garbage')), ProxyProtocolError);
  });
});

for (const command of proxyCommandsFromEnv()) defineClientSuite(command);
