/**
 * The README's `layerpipe copy` example, run as a reader would: from a scratch directory beside
 * the checkout's examples, with bin/ on PATH as `npm link` puts layerpipe there.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { it } from 'node:test';

const ROOT = path.resolve(__dirname, '..', '..', '..');

it('README: the copy example writes an archive skopeo reads, with the digest --digestfile names', () => {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('\n### Copying images');
  assert.ok(start >= 0, 'README has the copy section');
  const section = readme.slice(start, readme.indexOf('\n### ', start + 1));
  const blocks = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
  assert.equal(blocks.length, 1);
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-copy-readme-'));
  try {
    symlinkSync(path.join(ROOT, 'examples'), path.join(scratch, 'examples'));
    const env = { ...process.env, PATH: `${path.join(ROOT, 'bin')}:${process.env.PATH ?? ''}` };
    const run = spawnSync('bash', ['-e', '-c', blocks[0]!], { cwd: scratch, env, encoding: 'utf8', timeout: 120_000 });
    assert.equal(run.status, 0, run.stderr);
    const [checksum, digest] = run.stdout.trim().split('\n');
    assert.match(digest!, /^sha256:[0-9a-f]{64}$/);
    assert.equal(`sha256:${checksum!.split(' ')[0]}`, digest);
    assert.match(run.stderr, /Writing manifest to image destination/);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
});
