#!/usr/bin/env node
'use strict';
/**
 * npm's install step for the layerpipe_native addon (binding.gyp, protocol/seqpacket/*.c).
 *
 * The package ships Node-API prebuilds (prebuilds/linux-x64, prebuilds/linux-arm64), which load
 * in any Node version; when the one for this machine loads, nothing is compiled, so installing
 * needs no compiler. Otherwise, and in a tree that already builds from source (it has build/:
 * a developer's checkout, where `npm run install` must pick up a change to the C files), the
 * addon is compiled by node-gyp against the headers of the Node running this script.
 * `npm install --build-from-source` (or LAYERPIPE_BUILD_FROM_SOURCE=1) always compiles.
 */
const { spawnSync } = require('node:child_process');
const { existsSync } = require('node:fs');
const path = require('node:path');
const { nodeGypRebuild } = require('./node-gyp-run');

const PACKAGE_ROOT = path.resolve(__dirname, '..');

function buildsFromSource() {
  return (
    existsSync(path.join(PACKAGE_ROOT, 'build')) ||
    process.env.npm_config_build_from_source === 'true' ||
    process.env.LAYERPIPE_BUILD_FROM_SOURCE === '1'
  );
}

/** Whether a prebuild for this platform loads, tried in a child so a crash cannot take this process. */
function prebuildLoads() {
  let loader;
  try {
    loader = require.resolve('node-gyp-build', { paths: [PACKAGE_ROOT] });
  } catch {
    return false;
  }
  const probe = [
    'const load = require(process.argv[1]);',
    'try { load(process.argv[2]); console.log(load.resolve(process.argv[2])) }',
    'catch (e) { console.error(String(e.message)); process.exit(1) }',
  ].join(' ');
  const child = spawnSync(process.execPath, ['-e', probe, loader, PACKAGE_ROOT], {
    env: { ...process.env, PREBUILDS_ONLY: '1' },
    encoding: 'utf8',
  });
  if (child.status === 0) {
    process.stderr.write(`layerpipe: using the prebuilt addon ${path.relative(PACKAGE_ROOT, child.stdout.trim())}\n`);
    return true;
  }
  const reason = (child.stderr || '').split('\n').find((line) => line.trim() !== '') || `exit status ${child.status}`;
  process.stderr.write(`layerpipe: no usable prebuilt addon (${reason.trim()}); building it from source\n`);
  return false;
}

if (!buildsFromSource() && prebuildLoads()) process.exit(0);
process.exit(nodeGypRebuild(PACKAGE_ROOT, process.arch));
