/**
 * Directories for the registries.conf tests: a fresh /etc/containers stand-in and home per
 * case, so nothing from the real machine is read.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after } from 'node:test';
import { loadRegistriesConfig, type RegistriesConfig } from '../../server/config/registries-conf';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'layerpipe-registries-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

let caseNo = 0;
/** A fresh /etc/containers stand-in and home; nothing from the real machine is read. */
export function newDirs() {
  const dir = path.join(root, `case${++caseNo}`);
  const systemDir = path.join(dir, 'etc-containers');
  const home = path.join(dir, 'home');
  fs.mkdirSync(systemDir, { recursive: true });
  fs.mkdirSync(home, { recursive: true });
  const write = (file: string, text: string): string => {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, text);
    return file;
  };
  return {
    dir,
    systemDir,
    home,
    write,
    system: (text: string) => write(path.join(systemDir, 'registries.conf'), text),
    systemDropIn: (name: string, text: string) => write(path.join(systemDir, 'registries.conf.d', name), text),
    user: (text: string) => write(path.join(home, '.config/containers/registries.conf'), text),
    userDropIn: (name: string, text: string) => write(path.join(home, '.config/containers/registries.conf.d', name), text),
    load: (extra: { path?: string; env?: NodeJS.ProcessEnv } = {}) => loadRegistriesConfig({ systemDir, homeDir: home, env: {}, ...extra }),
  };
}

/** Loads a single explicit file. */
export async function configOf(text: string): Promise<RegistriesConfig> {
  const d = newDirs();
  return d.load({ path: d.write(path.join(d.dir, 'explicit.conf'), text) });
}

export const names = (sources: { name: string }[]) => sources.map((s) => s.name);
