/**
 * Hostile local images for the confinement tests: a layout whose blobs/ directory another
 * process keeps swapping for a symlink to the outside, FIFOs where files should be, and an
 * index nested into itself 32 times per level.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { makeLayer, MT, sha256, writeLayoutIndex, writeOciImage, type BuiltLayer, type WrittenManifest } from './oci-builder';

/** The package root: this file is compiled to dist/test/harness/. */
const PACKAGE_ROOT = path.resolve(__dirname, '..', '..', '..');

export function mkfifo(file: string): void {
  execFileSync('mkfifo', ['-m', '0600', file]);
}

export interface SwapFixture {
  /** The layout, as oci:LAYOUT:latest names it. */
  readonly layout: string;
  /** The layer every GetBlob asks for. */
  readonly layer: BuiltLayer;
  /** What the same-named file outside the layout holds: as long as the layer, all 'X'. */
  readonly outsideBytes: Buffer;
  /** The two names inside `layout` the helper swaps: blobs and a symlink to ../outside/blobs. */
  readonly swapNames: readonly [string, string];
}

/**
 * A one-layer layout under `root`, and `root`/outside/blobs/sha256/HEX holding other bytes of
 * the same length. layout/blobs-swap is a symlink to that outside blobs directory.
 */
export function writeSwapFixture(root: string): SwapFixture {
  const layout = path.join(root, 'layout');
  const layer = makeLayer({ 'inside.txt': 'served from inside the layout\n'.repeat(64) });
  writeOciImage(layout, { layers: [layer] }, 'latest');
  const outsideBlobs = path.join(root, 'outside', 'blobs', 'sha256');
  mkdirSync(outsideBlobs, { recursive: true });
  const outsideBytes = Buffer.alloc(layer.compressed.length, 'X');
  writeFileSync(path.join(outsideBlobs, layer.digest.slice(7)), outsideBytes);
  symlinkSync(path.join('..', 'outside', 'blobs'), path.join(layout, 'blobs-swap'));
  return { layout, layer, outsideBytes, swapNames: ['blobs', 'blobs-swap'] };
}

/** A running rename-exchange.py; stop() ends it after an even number of swaps and gives that number. */
export interface Swapper {
  stop(): Promise<number>;
}

function pythonProgram(): string {
  // pyenv's shim takes seconds to start; the system interpreter is enough for ctypes.
  return existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
}

export async function startSwapper(dir: string, a: string, b: string): Promise<Swapper> {
  const script = path.join(PACKAGE_ROOT, 'test', 'harness', 'rename-exchange.py');
  const child: ChildProcess = spawn(pythonProgram(), [script, dir, a, b], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const first = await lines.next();
  if (first.done === true || first.value !== 'ready') {
    child.kill('SIGKILL');
    throw new Error(`rename-exchange.py did not start: ${stderr.trim()}`);
  }
  return {
    async stop(): Promise<number> {
      child.kill('SIGTERM');
      const count = await lines.next();
      const code = await exited;
      if (code !== 0) throw new Error(`rename-exchange.py exited with ${code}: ${stderr.trim()}`);
      return Number(count.value);
    },
  };
}

/**
 * A layout whose index.json lists one nested index `width` times, which lists the next level's
 * index `width` times, `depth` levels down. The last level names one image "deep". Read
 * naively, looking for a ref that is not there reads width^depth indexes.
 */
export function writeFanOutLayout(layout: string, width: number, depth: number): { bottom: WrittenManifest } {
  const bottom = writeOciImage(layout, { layers: [makeLayer({ 'deep.txt': 'deep\n' })] }, 'deep');
  const blobs = path.join(layout, 'blobs', 'sha256');
  // writeOciImage's index.json becomes the deepest nested index, with its ref annotation.
  let level = readFileSync(path.join(layout, 'index.json'));
  for (let i = 1; i < depth; i++) {
    const digest = sha256(level);
    writeFileSync(path.join(blobs, digest.slice(7)), level);
    const entry = { mediaType: MT.ociIndex, digest, size: level.length };
    level = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.ociIndex, manifests: Array.from({ length: width }, () => entry) }));
  }
  const digest = sha256(level);
  writeFileSync(path.join(blobs, digest.slice(7)), level);
  const manifest: WrittenManifest = { digest, bytes: level, config: Buffer.alloc(0), mediaType: MT.ociIndex };
  writeLayoutIndex(layout, Array.from({ length: width }, () => ({ manifest })));
  return { bottom };
}
