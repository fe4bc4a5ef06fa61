/**
 * The service's socket: created 0600 (under a 0700 $XDG_RUNTIME_DIR/layerpipe for `unix:`),
 * a stale socket file replaced and a live service's refused, systemd socket activation through
 * LISTEN_FDS/LISTEN_PID (the inherited socket is served and its file left to systemd), and
 * SIGTERM with nothing in flight: the file is removed and the exit status is 0.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { native } from '../../protocol/seqpacket/native';
import { LAYERPIPE } from '../harness/jsonrpc-client';
import { writeOciImage, randomLayer, type WrittenManifest } from '../harness/oci-builder';
import { startService, stopService } from '../harness/service';

let root: string;
let reference: string;
let written: WrittenManifest;

before(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'service-socket-'));
  written = writeOciImage(path.join(root, 'image'), { layers: [randomLayer(10_000)] }, 'latest');
  reference = `oci:${path.join(root, 'image')}:latest`;
});
after(() => rmSync(root, { recursive: true, force: true }));

describe('serve --listen: the socket', { timeout: 60_000 }, () => {
  it('creates the socket 0600, serves on it, and removes it at SIGTERM with exit status 0', async () => {
    const socketPath = path.join(root, 'plain.sock');
    const service = await startService({ socketPath });
    const st = lstatSync(socketPath);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o600);
    const proxy = await service.connect();
    const image = await proxy.openImage(reference);
    assert.equal((await proxy.getManifest(image)).digest, written.digest);
    await proxy.close();
    const exit = await stopService(service);
    assert.deepEqual([exit.code, exit.signal], [0, null], service.stderr);
    assert.equal(existsSync(socketPath), false, 'the socket file is removed');
  });

  it('`--listen unix:` uses $XDG_RUNTIME_DIR/layerpipe/layerpipe.sock, making the directory 0700', async () => {
    const runtime = path.join(root, 'runtime');
    mkdirSync(runtime, { mode: 0o700 });
    const socketPath = path.join(runtime, 'layerpipe', 'layerpipe.sock');
    const service = await startService({ socketPath, listenArgs: ['--listen', 'unix:'], env: { XDG_RUNTIME_DIR: runtime } });
    assert.equal(statSync(path.dirname(socketPath)).mode & 0o777, 0o700);
    assert.equal(lstatSync(socketPath).mode & 0o777, 0o600);
    assert.equal((await stopService(service)).code, 0);
  });

  it('replaces a stale socket file, and refuses to start where a live service listens', async () => {
    const socketPath = path.join(root, 'stale.sock');
    // A socket file whose listener is gone.
    native.close(native.listenSeqpacket(socketPath, 1));
    assert.ok(lstatSync(socketPath).isSocket());
    const service = await startService({ socketPath });
    const second = spawnSync(LAYERPIPE, ['serve', '--listen', `unix:${socketPath}`, '--insecure-policy'], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(second.status, 1);
    assert.match(second.stderr, /another service is listening there/);
    assert.ok(existsSync(socketPath), 'the live service keeps its socket');
    const proxy = await service.connect();
    await proxy.close();
    assert.equal((await stopService(service)).code, 0);
  });

  it('refuses usage errors: no way to serve, both --stdio and --listen, a listen address that is not unix:', () => {
    const run = (args: string[]): { status: number | null; stderr: string } => {
      const env = { ...process.env };
      delete env.LISTEN_FDS;
      delete env.LISTEN_PID;
      return spawnSync(LAYERPIPE, ['serve', ...args], { encoding: 'utf8', env, timeout: 20_000 });
    };
    let r = run([]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /serve needs --stdio or --listen unix:PATH/);
    r = run(['--stdio', '--listen', 'unix:/tmp/x.sock']);
    assert.equal(r.status, 2);
    r = run(['--listen', 'tcp:127.0.0.1:1', '--insecure-policy']);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /expected unix:PATH/);
    r = run(['--listen', 'unix:', '--insecure-policy', '--grace-period', 'soon']);
    assert.equal(r.status, 2);
  });

  it('serves a socket passed by systemd (LISTEN_FDS=1, LISTEN_PID) and leaves its file to systemd', async () => {
    const socketPath = path.join(root, 'activated.sock');
    const listenFd = native.listenSeqpacket(socketPath, 16);
    let service;
    try {
      service = await startService({ socketPath, listenArgs: [], activationFd: listenFd });
    } finally {
      native.close(listenFd); // only the service holds it now
    }
    const proxy = await service.connect();
    const image = await proxy.openImage(reference);
    assert.equal((await proxy.getManifest(image)).digest, written.digest);
    await proxy.close();
    const exit = await stopService(service);
    assert.equal(exit.code, 0, service.stderr);
    assert.ok(existsSync(socketPath), 'the socket file belongs to systemd, not to the service');
  });

  it('refuses an activation socket that is not a listening SEQPACKET socket', async () => {
    const [a, b] = native.seqpacketPair();
    try {
      const r = spawnSync('/bin/sh', ['-c', 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@" 3<&0', LAYERPIPE, 'serve', '--insecure-policy'], {
        stdio: [a, 'ignore', 'pipe'], encoding: 'utf8', timeout: 20_000,
      });
      assert.equal(r.status, 1);
      assert.match(r.stderr, /must be a listening SOCK_SEQPACKET socket/);
    } finally {
      native.close(a);
      native.close(b);
    }
  });
});
