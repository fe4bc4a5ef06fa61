/** The package's version, read from package.json next to the compiled tree. */
import { readFileSync } from 'node:fs';
import path from 'node:path';

export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}
