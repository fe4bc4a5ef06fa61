/**
 * The TypeScript client's boundaries, read from its sources: it shares protocol/ with the
 * server but never imports server/ (not even through a protocol/ module), only
 * seqpacket-channel.ts reaches the native addon, and image-proxy.ts talks to a Channel.
 */
import { strict as assert } from 'node:assert';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import ts from 'typescript';

/** The repository root: this file runs as dist/test/unit/client-imports.test.js. */
const ROOT = path.resolve(__dirname, '..', '..', '..');
const CLIENT_DIR = path.join(ROOT, 'clients', 'typescript');
const SERVER_DIR = path.join(ROOT, 'server');
const SEQPACKET_DIR = path.join(ROOT, 'protocol', 'seqpacket');

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return tsFiles(full);
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [full] : [];
  });
}

/** Every module specifier of a file: imports, re-exports, require() and import() calls. */
function specifiers(file: string): string[] {
  return ts.preProcessFile(readFileSync(file, 'utf8'), true, true).importedFiles.map((f) => f.fileName);
}

/** The .ts file a relative specifier names, or null for packages and node: builtins. */
function resolveLocal(from: string, spec: string): string | null {
  if (!spec.startsWith('.')) return null;
  const base = path.resolve(path.dirname(from), spec);
  for (const candidate of [`${base}.ts`, path.join(base, 'index.ts'), base]) {
    if (existsSync(candidate) && statSync(candidate).isFile()) return candidate;
  }
  return base; // unresolved: still checked by path
}

const inside = (dir: string, file: string) => !path.relative(dir, file).startsWith('..');
const rel = (file: string) => path.relative(ROOT, file);

/** Local modules reachable from `start`, each with its shortest import chain; server/ is not entered. */
function reachable(start: string): Map<string, string[]> {
  const chains = new Map<string, string[]>([[start, [rel(start)]]]);
  const queue = [start];
  while (queue.length > 0) {
    const file = queue.shift()!;
    if (!file.endsWith('.ts') || !existsSync(file)) continue;
    for (const spec of specifiers(file)) {
      const target = resolveLocal(file, spec);
      if (target === null || chains.has(target)) continue;
      chains.set(target, [...chains.get(file)!, rel(target)]);
      if (!inside(SERVER_DIR, target)) queue.push(target);
    }
  }
  return chains;
}

describe('TypeScript client imports', () => {
  const files = tsFiles(CLIENT_DIR);

  it('finds the client sources', () => {
    assert.ok(files.some((f) => f.endsWith('image-proxy.ts')), `no sources under ${CLIENT_DIR}`);
  });

  it('never imports from server/, directly or through what it imports', () => {
    /** Per server/ module reached, the shortest chain found. */
    const offending = new Map<string, string>();
    for (const file of files) {
      for (const spec of specifiers(file)) {
        if (resolveLocal(file, spec) === null && /(^|\/)server(\/|$)/.test(spec)) offending.set(spec, `${rel(file)} -> ${spec}`);
      }
      for (const [target, chain] of reachable(file)) {
        const known = offending.get(target);
        if (inside(SERVER_DIR, target) && (known === undefined || known.split(' -> ').length > chain.length)) offending.set(target, chain.join(' -> '));
      }
    }
    assert.deepEqual([...offending.values()], []);
  });

  it('reaches the native addon only through seqpacket-channel.ts (sockets) and rpc/in-band.ts (the base64 decoder)', () => {
    const direct = files.filter((file) =>
      specifiers(file).some((spec) => {
        const target = resolveLocal(file, spec);
        return target !== null && inside(SEQPACKET_DIR, target);
      }));
    assert.deepEqual(direct.map(rel).sort(), [path.join('clients', 'typescript', 'rpc', 'in-band.ts'), path.join('clients', 'typescript', 'seqpacket-channel.ts')]);
  });

  it('keeps image-proxy.ts on the Channel interface: no socket, addon or child process of its own', () => {
    const file = path.join(CLIENT_DIR, 'image-proxy.ts');
    const specs = specifiers(file);
    for (const banned of ['node:child_process', 'child_process', './seqpacket-channel', '../../protocol/seqpacket/native', '../../protocol/seqpacket/socket']) {
      assert.ok(!specs.includes(banned), `image-proxy.ts imports ${banned}`);
    }
    assert.ok(specs.includes('./channel'), 'image-proxy.ts speaks to ./channel');
  });
});
