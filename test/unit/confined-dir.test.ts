/**
 * Opening files beneath a directory fd (protocol/seqpacket/beneath.c) and ConfinedDirectory on
 * top of it, on each resolver: openat2 (when this kernel has it) and the openat walk that
 * older kernels get, forced here. Both must give the same answers.
 */
import { strict as assert } from 'node:assert';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BlobNotFoundError, CancelledError, InvalidArgumentError, UnsafeContentError, UnsupportedError } from '../../protocol/errors';
import { isNativeError, native, type BeneathResolver } from '../../protocol/seqpacket/native';
import { readAll } from '../../server/image/image';
import { ConfinedDirectory, defaultResolver } from '../../server/transports/local/confined-dir';
import { mkfifo } from '../harness/hostile-layouts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-beneath-'));
const root = path.join(tmp, 'root');
let server: net.Server | undefined;

before(async () => {
  mkdirSync(path.join(root, 'blobs', 'sha256'), { recursive: true });
  mkdirSync(path.join(tmp, 'outside'));
  writeFileSync(path.join(root, 'index.json'), '{"inside":true}');
  writeFileSync(path.join(root, 'blobs', 'sha256', 'aa'), 'blob aa');
  writeFileSync(path.join(root, 'big'), Buffer.alloc(5000, 'b'));
  writeFileSync(path.join(tmp, 'outside', 'secret'), 'outside secret');
  symlinkSync('index.json', path.join(root, 'inner-link'));
  symlinkSync(path.join(tmp, 'outside', 'secret'), path.join(root, 'outer-link'));
  symlinkSync('blobs', path.join(root, 'blobs-link'));
  symlinkSync('/dev/zero', path.join(root, 'zero'));
  mkfifo(path.join(root, 'fifo'));
  server = net.createServer();
  await new Promise<void>((resolve) => server!.listen(path.join(root, 'socket'), resolve));
});
after(() => {
  server?.close();
  rmSync(tmp, { recursive: true, force: true });
});

const openFds = (): number => readdirSync('/proc/self/fd').length;

async function codeOf(promise: Promise<unknown>): Promise<string> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  assert.ok(isNativeError(err), `expected an errno error, got ${String(err)}`);
  return err.code;
}

const resolvers: BeneathResolver[] = native.kernelHasOpenat2() ? ['openat2', 'walk', 'auto'] : ['walk', 'auto'];
console.log(`# kernel ${os.release()}: openat2 ${native.kernelHasOpenat2() ? 'available' : 'missing (ENOSYS): walk only'}`);

describe('openDirectory', () => {
  it('opens a directory O_PATH, close-on-exec; follows links in the named path', async () => {
    for (const dir of [root, path.join(root, 'blobs-link')]) {
      const fd = await native.openDirectory(dir);
      try {
        const flags = Number.parseInt(/^flags:\s*([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))![1]!, 8);
        assert.ok(flags & 0o2000000, 'O_CLOEXEC');
        assert.ok(flags & 0o10000000, 'O_PATH');
      } finally {
        native.close(fd);
      }
    }
  });

  it('refuses what is missing or not a directory; a FIFO without blocking', async () => {
    assert.equal(await codeOf(native.openDirectory(path.join(tmp, 'nowhere'))), 'ENOENT');
    assert.equal(await codeOf(native.openDirectory(path.join(root, 'index.json'))), 'ENOTDIR');
    assert.equal(await codeOf(native.openDirectory(path.join(root, 'fifo'))), 'ENOTDIR');
    assert.throws(() => native.openDirectory(`${root}\0x`), TypeError);
  });
});

for (const resolver of resolvers) {
  describe(`openBeneath, resolver ${resolver}`, () => {
    let dirFd: number;
    before(async () => {
      dirFd = await native.openDirectory(root);
    });
    after(() => native.close(dirFd));

    it('opens a regular file: blocking, close-on-exec, its size, the resolver used', async () => {
      for (const rel of ['blobs/sha256/aa', './blobs//sha256/./aa']) {
        const f = await native.openBeneath(dirFd, rel, resolver);
        try {
          assert.equal(f.kind, 'file');
          assert.equal(f.size, 7);
          assert.equal(f.resolver, resolver === 'auto' ? (native.kernelHasOpenat2() ? 'openat2' : 'walk') : resolver);
          const flags = Number.parseInt(/^flags:\s*([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${f.fd}`, 'utf8'))![1]!, 8);
          assert.ok(flags & 0o2000000, 'O_CLOEXEC');
          assert.equal(flags & 0o4000, 0, 'O_NONBLOCK cleared');
          assert.equal(readlinkSync(`/proc/self/fd/${f.fd}`), path.join(root, 'blobs', 'sha256', 'aa'));
        } finally {
          native.close(f.fd);
        }
      }
    });

    it('follows no symlink: last component, middle component, inside or out', async () => {
      for (const rel of ['inner-link', 'outer-link', 'blobs-link/sha256/aa', 'zero']) {
        assert.equal(await codeOf(native.openBeneath(dirFd, rel, resolver)), 'ELOOP', rel);
      }
    });

    it('never leaves the directory: absolute paths and ".." are EXDEV', async () => {
      for (const rel of ['/etc/passwd', '../outside/secret', 'blobs/../index.json', 'blobs/sha256/..']) {
        assert.equal(await codeOf(native.openBeneath(dirFd, rel, resolver)), 'EXDEV', rel);
      }
    });

    it('ENOENT, ENOTDIR, and bad arguments', async () => {
      assert.equal(await codeOf(native.openBeneath(dirFd, 'blobs/sha256/bb', resolver)), 'ENOENT');
      assert.equal(await codeOf(native.openBeneath(dirFd, '', resolver)), 'ENOENT');
      assert.equal(await codeOf(native.openBeneath(dirFd, 'index.json/x', resolver)), 'ENOTDIR');
      assert.equal(await codeOf(native.openBeneath(dirFd, 'fifo/', resolver)), 'ENOTDIR');
      assert.throws(() => native.openBeneath(dirFd, 'x/'.repeat(2100), resolver), { code: 'ENAMETOOLONG' });
      assert.throws(() => native.openBeneath(dirFd, 'a\0b', resolver), TypeError);
      assert.equal(await codeOf(native.openBeneath(12345, 'index.json', resolver)), 'EBADF');
    });

    it('reports a FIFO, a directory, a socket by kind at once, leaving no fd open', async () => {
      const before = openFds();
      const fifo = await native.openBeneath(dirFd, 'fifo', resolver);
      assert.deepEqual([fifo.kind, fifo.fd], ['fifo', -1]);
      const dir = await native.openBeneath(dirFd, 'blobs/sha256/', resolver);
      assert.deepEqual([dir.kind, dir.fd], ['directory', -1]);
      assert.equal((await native.openBeneath(dirFd, '.', resolver)).kind, 'directory');
      // open(2) of a socket file is ENXIO.
      assert.equal(await codeOf(native.openBeneath(dirFd, 'socket', resolver)), 'ENXIO');
      assert.equal(openFds(), before);
    });
  });
}

describe('defaultResolver', () => {
  it('is the walk when LAYERPIPE_NO_OPENAT2 is set to something other than 0', () => {
    assert.equal(defaultResolver({}), 'auto');
    assert.equal(defaultResolver({ LAYERPIPE_NO_OPENAT2: '0' }), 'auto');
    assert.equal(defaultResolver({ LAYERPIPE_NO_OPENAT2: '' }), 'auto');
    assert.equal(defaultResolver({ LAYERPIPE_NO_OPENAT2: '1' }), 'walk');
  });
});

for (const resolver of ['walk', 'auto'] as const) {
  describe(`ConfinedDirectory, resolver ${resolver}`, () => {
    const rel = path.relative(process.cwd(), root);

    it('reads and streams files inside, and closes its directory fd when closed', async () => {
      const before = openFds();
      const dir = await ConfinedDirectory.open(rel, resolver);
      assert.equal((await dir.read('index.json', 100)).toString(), '{"inside":true}');
      const big = await dir.open('big');
      assert.equal(big.size, 5000);
      assert.deepEqual(await readAll(big.stream, 10_000, 'big'), Buffer.alloc(5000, 'b'));
      await dir.close();
      await dir.close();
      assert.equal(openFds(), before);
      await assert.rejects(dir.read('index.json', 100), CancelledError);
    });

    it('refuses with typed errors that show only the path as the client named it', async () => {
      const dir = await ConfinedDirectory.open(rel, resolver);
      try {
        const cases: Array<[string, new (...args: never[]) => Error, RegExp]> = [
          ['blobs/sha256/bb', BlobNotFoundError, /blobs\/sha256\/bb: no such file or directory$/],
          ['outer-link', UnsafeContentError, /outer-link: a symbolic link on the path points outside /],
          ['inner-link', UnsafeContentError, /inner-link: a symbolic link on the path is refused: links are not followed inside /],
          ['blobs-link/sha256/aa', UnsafeContentError, /symbolic link/],
          ['zero', UnsafeContentError, /zero: a symbolic link on the path points outside/],
          ['fifo', UnsafeContentError, /fifo is a FIFO, not a regular file$/],
          ['blobs', UnsafeContentError, /blobs is a directory, not a regular file$/],
          ['socket', UnsafeContentError, /socket is not a regular file$/],
          ['../outside/secret', UnsafeContentError, /leaves /],
          ['/etc/passwd', UnsafeContentError, /leaves /],
        ];
        for (const [name, cls, pattern] of cases) {
          const err = await dir.read(name, 100).then(() => undefined, (e: Error) => e);
          assert.ok(err instanceof cls, `${name}: ${String(err)}`);
          assert.match(err.message, pattern, name);
          if (!/leaves/.test(err.message)) assert.ok(err.message.startsWith(`${rel}/${name}`), `${name}: ${err.message}`);
          assert.ok(!err.message.includes(path.join(tmp, 'outside')), `${name}: no link target in ${err.message}`);
        }
        await assert.rejects(dir.read('big', 4999), (e: unknown) => e instanceof UnsupportedError && /big is larger than 4999 bytes/.test(e.message));
      } finally {
        await dir.close();
      }
    });

    it('a missing or non-directory root is refused when opened', async () => {
      await assert.rejects(ConfinedDirectory.open(path.join(rel, 'nowhere'), resolver), (e: unknown) => e instanceof InvalidArgumentError && /nowhere: no such directory/.test(e.message));
      await assert.rejects(ConfinedDirectory.open(path.join(rel, 'fifo'), resolver), (e: unknown) => e instanceof InvalidArgumentError && /not a directory/.test(e.message));
    });

    it('close while opens are in flight: they settle, then the fd is closed', async () => {
      const before = openFds();
      const dir = await ConfinedDirectory.open(rel, resolver);
      const reads = Array.from({ length: 20 }, () => dir.read('index.json', 100).then(() => 'ok', (e: Error) => e.constructor.name));
      await dir.close();
      for (const r of await Promise.all(reads)) assert.ok(r === 'ok' || r === 'CancelledError', r);
      assert.equal(openFds(), before);
    });
  });
}
