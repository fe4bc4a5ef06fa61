#!/usr/bin/env node
'use strict';
/**
 * Builds the Node-API prebuilds the package ships, at `npm pack` (prepack):
 * prebuilds/linux-x64/node.napi.glibc.node and prebuilds/linux-arm64/node.napi.glibc.node, the
 * names node-gyp-build looks for. Node-API keeps them loadable by every Node version. The
 * arch that is not this machine's is cross-compiled with Debian's gcc-<triple> (for arm64:
 * apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross). Each arch is built by node-gyp
 * from binding.gyp in a temporary copy of the sources, so a developer's build/ is left alone,
 * and each result is checked to be an ELF shared object for its machine.
 *
 *   node scripts/prebuild.js [ARCH...]     (default: x64 arm64)
 */
const { spawnSync } = require('node:child_process');
const { cpSync, mkdirSync, mkdtempSync, openSync, readSync, closeSync, readdirSync, rmSync, copyFileSync } = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { nodeGypRebuild } = require('./node-gyp-run');

const PACKAGE_ROOT = path.resolve(__dirname, '..');
const ADDON_SOURCES = path.join('protocol', 'seqpacket');

/** Debian's target triple and ELF e_machine of each arch a prebuild is made for. */
const TARGETS = {
  x64: { triple: 'x86_64-linux-gnu', elfMachine: 0x3e },
  arm64: { triple: 'aarch64-linux-gnu', elfMachine: 0xb7 },
};

/** The e_machine of an ELF file, or null when it is not one. */
function elfMachine(file) {
  const header = Buffer.alloc(20);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, header, 0, header.length, 0);
  } finally {
    closeSync(fd);
  }
  if (header.readUInt32BE(0) !== 0x7f454c46) return null;
  return header[5] === 1 ? header.readUInt16LE(18) : header.readUInt16BE(18);
}

/** CC and LINK for a cross build; nothing for this machine's own arch. */
function compilerEnv(arch, triple) {
  if (arch === process.arch) return {};
  const cc = `${triple}-gcc`;
  if (spawnSync(cc, ['--version'], { stdio: 'ignore' }).status !== 0) {
    throw new Error(`${cc} is not installed: apt-get install gcc-${triple} libc6-dev-${arch === 'arm64' ? 'arm64' : 'amd64'}-cross`);
  }
  // gyp links with $(CXX) by default; the addon is C only, so the C driver links it.
  return { CC: cc, LINK: cc, CC_host: 'gcc', CXX_host: 'g++' };
}

function buildOne(arch, outDir) {
  const target = TARGETS[arch];
  if (target === undefined) throw new Error(`no prebuild target for ${arch} (known: ${Object.keys(TARGETS).join(', ')})`);
  const work = mkdtempSync(path.join(os.tmpdir(), `layerpipe-prebuild-${arch}-`));
  try {
    cpSync(path.join(PACKAGE_ROOT, 'binding.gyp'), path.join(work, 'binding.gyp'));
    const sources = readdirSync(path.join(PACKAGE_ROOT, ADDON_SOURCES)).filter((name) => /\.[ch]$/.test(name));
    mkdirSync(path.join(work, ADDON_SOURCES), { recursive: true });
    for (const name of sources) cpSync(path.join(PACKAGE_ROOT, ADDON_SOURCES, name), path.join(work, ADDON_SOURCES, name));
    const status = nodeGypRebuild(work, arch, compilerEnv(arch, target.triple));
    if (status !== 0) throw new Error(`node-gyp failed for ${arch} (exit status ${status})`);
    const built = path.join(work, 'build', 'Release', 'layerpipe_native.node');
    const machine = elfMachine(built);
    if (machine !== target.elfMachine) throw new Error(`${built} is not an ELF object for ${arch} (e_machine ${machine})`);
    const dest = path.join(outDir, `linux-${arch}`);
    mkdirSync(dest, { recursive: true });
    copyFileSync(built, path.join(dest, 'node.napi.glibc.node'));
    process.stderr.write(`prebuild: ${path.relative(PACKAGE_ROOT, dest)}/node.napi.glibc.node\n`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function main() {
  const arches = process.argv.length > 2 ? process.argv.slice(2) : Object.keys(TARGETS);
  const outDir = path.join(PACKAGE_ROOT, 'prebuilds');
  rmSync(outDir, { recursive: true, force: true });
  for (const arch of arches) buildOne(arch, outDir);
}

try {
  main();
} catch (err) {
  process.stderr.write(`prebuild: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
