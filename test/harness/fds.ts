/** File-descriptor helpers for tests that talk to the kernel directly (the native addon, sockets). */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import { after } from 'node:test';
import { native } from '../../protocol/seqpacket/native';

/**
 * A `track(fds)` for one test file: every fd it is given is closed when the file's tests end,
 * unless a test closed it itself (EBADF ignored). Call at the top level of the file.
 */
export function fdTracker(): <T extends number[]>(fds: T) => T {
  const opened: number[] = [];
  after(() => {
    for (const fd of opened) {
      try {
        native.close(fd);
      } catch {
        // closed by the test itself
      }
    }
  });
  return (fds) => {
    opened.push(...fds);
    return fds;
  };
}

export function isOpen(fd: number): boolean {
  try {
    fs.fstatSync(fd);
    return true;
  } catch {
    return false;
  }
}

export function fdTarget(fd: number): string {
  return fs.readlinkSync(`/proc/self/fd/${fd}`);
}

const O_CLOEXEC_OCTAL = 0o2000000;

export function isCloexec(fd: number): boolean {
  const info = fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
  const m = /^flags:\s*([0-7]+)$/m.exec(info);
  assert.ok(m, `no flags line in fdinfo for ${fd}`);
  return (parseInt(m[1]!, 8) & O_CLOEXEC_OCTAL) !== 0;
}

export const tick = (): Promise<void> => new Promise<void>((resolve) => setImmediate(resolve));
