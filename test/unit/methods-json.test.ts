/**
 * protocol/emit-methods-json.ts: the JSON the Python and Rust clients' tests read is the
 * method table as declared, constants included.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { methodsJson } from '../../protocol/emit-methods-json';
import { MAX_MESSAGE_SIZE_1, Notifications1, PARAMS_1, PROTOCOL_VERSION_1, RpcErrorCodes } from '../../protocol/jsonrpc';
import { compareVersions, ERROR_CODES, MAX_MESSAGE_SIZE, METHODS, PROTOCOL_VERSION, SENTINEL_IMAGE_ID } from '../../protocol/methods';

const EMITTER = path.resolve(__dirname, '..', '..', 'protocol', 'emit-methods-json.js');

describe('methods.json', () => {
  it('carries every method as declared, in order', () => {
    const json = methodsJson();
    assert.deepEqual(json.METHODS.map((m) => m.name), Object.keys(METHODS));
    for (const m of json.METHODS) {
      const spec = METHODS[m.name];
      assert.deepEqual([m.args, m.argNames, m.data, m.since], [spec.args, spec.argNames, spec.data, spec.since], m.name);
      assert.equal(m.args.length, m.argNames.length, m.name);
      assert.ok(compareVersions(m.since, PROTOCOL_VERSION) <= 0, `${m.name} arrived after ${PROTOCOL_VERSION}`);
    }
    assert.deepEqual(
      [json.PROTOCOL_VERSION, json.MAX_MESSAGE_SIZE, json.SENTINEL_IMAGE_ID, json.ERROR_CODES],
      [PROTOCOL_VERSION, MAX_MESSAGE_SIZE, SENTINEL_IMAGE_ID, ERROR_CODES],
    );
  });

  it('carries protocol 1.0: params of every method, notifications, error codes', () => {
    const json = methodsJson().PROTOCOL_1;
    assert.deepEqual(json.PARAMS, PARAMS_1);
    assert.deepEqual(json.ERROR_CODES, RpcErrorCodes);
    assert.deepEqual(Object.values(json.NOTIFICATIONS).sort(), Object.values(Notifications1).map((n) => n.method).sort());
    assert.deepEqual([json.PROTOCOL_VERSION, json.MAX_MESSAGE_SIZE], [PROTOCOL_VERSION_1, MAX_MESSAGE_SIZE_1]);
  });

  it('is written by the emitter to the path given, which it prints', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'layerpipe-methods-'));
    try {
      const output = path.join(dir, 'methods.json');
      const printed = execFileSync(process.execPath, [EMITTER, output], { encoding: 'utf8' }).trim();
      assert.equal(printed, output);
      assert.deepEqual(JSON.parse(readFileSync(output, 'utf8')), JSON.parse(JSON.stringify(methodsJson())));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
