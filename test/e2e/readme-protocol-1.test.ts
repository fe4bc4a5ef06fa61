/**
 * The README's protocol 1.0 shell examples, run as a reader would run them from the
 * repository root: the hand-written JSON-RPC session on `serve --stdio` and the Python client.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';

const ROOT = path.resolve(__dirname, '..', '..', '..');

/** The fenced shell blocks of the README section whose heading starts with `heading`. */
function shellBlocks(heading: string): string[] {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf(`\n${heading}`);
  assert.ok(start >= 0, `README has a section "${heading}"`);
  const end = readme.indexOf('\n### ', start + 1);
  const section = readme.slice(start, end < 0 ? undefined : end);
  return [...section.matchAll(/```(?:sh|bash)\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

function runBash(script: string): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync('bash', ['-c', script], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('README: protocol 1.0 examples', () => {
  const blocks = shellBlocks('### Protocol 1.0');

  it('has the shell and Python examples', () => assert.equal(blocks.length, 2));

  it('the hand-written session on serve --stdio gets its four answers and exits 0', () => {
    const { status, stdout, stderr } = runBash(blocks[0]!);
    assert.equal(status, 0, stderr);
    const answers = stdout.trim().split('\n').slice(0, 4).map((line) => JSON.parse(line) as { id: number; result: unknown });
    assert.deepEqual(answers.map((a) => a.id), [1, 2, 3, 4]);
    assert.equal((answers[0]!.result as { protocolVersion: string }).protocolVersion, '1.0.0');
    assert.deepEqual(answers[1]!.result, { image: 1 });
    assert.ok(((answers[2]!.result as { layers: unknown[] }).layers).length > 0);
    assert.equal(answers[3]!.result, null);
    assert.match(stdout, /exit status 0/);
  });

  it('the Python example pulls every layer of the sample image over 1.0', () => {
    const { status, stdout, stderr } = runBash(blocks[1]!);
    assert.equal(status, 0, stderr);
    const lines = stdout.trim().split('\n');
    assert.ok(lines.length >= 1);
    for (const line of lines) assert.match(line, /^sha256:[0-9a-f]{64} \d+ bytes, verified$/);
  });
});
