/**
 * registries.d naming no lookaside for an image: signatures are read from containers/image's
 * built-in default, /var/lib/containers/sigstore for root and ~/.local/share/containers/sigstore
 * for other users, and a namespace's or default-docker's lookaside still comes first.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { builtinDefaultLookaside, loadRegistriesD, lookasideFor } from '../../server/config/registries-d';

describe('the built-in default lookaside', () => {
  it('is /var/lib/containers/sigstore for root and under the home directory for others', () => {
    assert.equal(builtinDefaultLookaside(0, '/root'), 'file:///var/lib/containers/sigstore');
    assert.equal(builtinDefaultLookaside(1000, '/home/u'), 'file:///home/u/.local/share/containers/sigstore');
  });

  it('applies only when no scope and no default-docker names a lookaside', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-registries-d-'));
    try {
      const empty = await loadRegistriesD(dir);
      assert.equal(lookasideFor(empty, ['example.com/a/b', 'example.com/a', 'example.com'], 'file:///fallback'), 'file:///fallback');
      writeFileSync(path.join(dir, 'a.yaml'), 'docker:\n  example.com/a:\n    lookaside: file:///ns\n');
      const named = await loadRegistriesD(dir);
      assert.equal(lookasideFor(named, ['example.com/a/b', 'example.com/a', 'example.com'], 'file:///fallback'), 'file:///ns');
      assert.equal(lookasideFor(named, ['other.example/x', 'other.example'], 'file:///fallback'), 'file:///fallback');
      writeFileSync(path.join(dir, 'b.yaml'), 'default-docker:\n  lookaside: file:///everyone\n');
      const withDefault = await loadRegistriesD(dir);
      assert.equal(lookasideFor(withDefault, ['other.example/x', 'other.example'], 'file:///fallback'), 'file:///everyone');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
