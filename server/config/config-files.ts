/**
 * The file reads of the configuration modules (auth files, registries.conf, registries.d,
 * certs.d): node:fs's callback functions, promisified. node:fs/promises would give the same
 * results and errors, but loading it (with readline, fs watchers and FileHandle) and compiling its
 * functions costs a proxy's first OpenImage ~1.5 ms; node:fs is loaded at every start.
 */
import { readdir, readFile, stat } from 'node:fs';
import { promisify } from 'node:util';

export const configFs = { readFile: promisify(readFile), readdir: promisify(readdir), stat: promisify(stat) };
