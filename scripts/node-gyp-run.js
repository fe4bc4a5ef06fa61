'use strict';
/**
 * Runs node-gyp for the layerpipe_native addon against the headers of the Node that runs this
 * script, so a build never needs to download them. Shared by the install step
 * (install-native.js) and the prebuilds made at `npm pack` (prebuild.js); plain JavaScript,
 * since both run before (or without) the TypeScript build.
 */
const { spawnSync } = require('node:child_process');
const { existsSync } = require('node:fs');
const path = require('node:path');

/**
 * The directory holding include/node/node_api.h for this Node: its own prefix (Debian's
 * /usr, or an official tarball's root, both keep bin/node beside include/node), else npm's
 * configured nodedir. Undefined when neither has the headers; node-gyp then looks for them itself.
 */
function nodeHeadersDir() {
  const candidates = [path.resolve(path.dirname(process.execPath), '..'), process.env.npm_config_nodedir];
  return candidates.find((dir) => dir !== undefined && dir !== '' && existsSync(path.join(dir, 'include', 'node', 'node_api.h')));
}

/** The node-gyp to run: the one npm gives its scripts, else npm's bundled copy, else node-gyp on PATH. */
function nodeGypCommand() {
  const bundled = path.resolve(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  const script = [process.env.npm_config_node_gyp, bundled].find((file) => file !== undefined && file !== '' && existsSync(file));
  return script === undefined ? { command: 'node-gyp', prefix: [] } : { command: process.execPath, prefix: [script] };
}

/**
 * `node-gyp rebuild` in `dir` (which holds binding.gyp) for `arch`, with `env` added (a cross
 * compiler's CC and LINK). Its output goes to stderr; returns the exit status.
 */
function nodeGypRebuild(dir, arch, env = {}) {
  const { command, prefix } = nodeGypCommand();
  const headers = nodeHeadersDir();
  const args = [...prefix, 'rebuild', `--arch=${arch}`, ...(headers === undefined ? [] : [`--nodedir=${headers}`])];
  const result = spawnSync(command, args, { cwd: dir, stdio: ['ignore', 2, 2], env: { ...process.env, ...env } });
  if (result.error !== undefined) {
    process.stderr.write(`layerpipe: cannot run ${command}: ${result.error.message}\n`);
    return 1;
  }
  return result.status ?? 1;
}

module.exports = { nodeHeadersDir, nodeGypRebuild };
