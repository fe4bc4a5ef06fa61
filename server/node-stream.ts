/**
 * node:stream, loaded at its first use. Modules a proxy loads to answer Initialize (the wire,
 * the transfer table, image ranges) need it only once bytes move, and loading its twenty-odd
 * internal modules cost a cold proxy ~3-5 ms before its first reply (bench/startup-bench.ts).
 * Types come from `import type`, which costs nothing at run time.
 */
export function nodeStream(): typeof import('node:stream') {
  return require('node:stream') as typeof import('node:stream');
}
