/**
 * The package's version, read from package.json next to the compiled tree, once per process (a
 * service answers every 1.0 connection's Initialize with it; the file does not change under it).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

let version: string | undefined;

export function packageVersion(): string {
  version ??= (JSON.parse(readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;
  return version;
}
