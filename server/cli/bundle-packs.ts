/**
 * How build-bundle.ts stores the bundle's chunks: in packs, one file each, read and compiled at
 * once (bin/layerpipe). Chunks a step always loads together share a pack: a proxy's start (the entry
 * and the proxy command, with every chunk they import), then its first image (the open path, and
 * the 0.2.x wire's pipes its first bytes go through).
 * Every other chunk is a pack of its own. A file read and a V8 compile (with its code cache) cost
 * a start about half a millisecond each on a small VM, whatever the size: a proxy's start spread
 * over ten chunk files cost some 5 ms more than the same code in one.
 */

/** One chunk as esbuild made it, rewritten as a CommonJS module body. */
export interface BuiltChunk {
  /** Its file name, as other chunks require it (`./<name>`). */
  readonly name: string;
  readonly code: string;
  /** Its source map (JSON), to the TypeScript and package sources. */
  readonly map: string;
  /** The chunks it requires when it runs (its `import` statements; not its `import()`s). */
  readonly imports: readonly string[];
  /** The source whose entry (the CLI's, or an `import()`) it is, relative to the package root. */
  readonly entryPoint: string | undefined;
}

/** A pack's file name and the chunks in it, in the order they are written. */
export interface Pack {
  readonly file: string;
  readonly chunks: readonly string[];
}

/** The packs of chunks loaded together: each holds its roots' chunks and all they import, but what an earlier pack holds. */
export const SHARED_PACKS: readonly { readonly file: string; readonly roots: readonly string[] }[] = [
  // The policy parser is imported when a policy file is read, at start (policy/load.ts).
  { file: 'proxy-start.js', roots: ['server/cli/index.ts', 'server/cli/commands/proxy.ts', 'server/policy/parse.ts'] },
  { file: 'first-image.js', roots: ['server/image/open.ts', 'server/wires/skopeo/delivery.ts'] },
];

/** Every chunk in exactly one pack: the shared packs, then one pack per chunk left. */
export function assignPacks(chunks: readonly BuiltChunk[]): Pack[] {
  const byName = new Map(chunks.map((chunk) => [chunk.name, chunk]));
  const packed = new Set<string>();
  const packs: Pack[] = [];
  for (const shared of SHARED_PACKS) {
    const members: string[] = [];
    const visit = (name: string): void => {
      if (packed.has(name)) return;
      packed.add(name);
      members.push(name);
      for (const imported of byName.get(name)?.imports ?? []) visit(imported);
    };
    const roots = chunks.filter((chunk) => chunk.entryPoint !== undefined && shared.roots.includes(chunk.entryPoint));
    if (roots.length !== shared.roots.length) throw new Error(`the bundle has no chunk for some of ${shared.roots.join(', ')} (an import() of it is gone?)`);
    for (const root of roots) visit(root.name);
    packs.push({ file: shared.file, chunks: members });
  }
  for (const chunk of chunks) if (!packed.has(chunk.name)) packs.push({ file: chunk.name, chunks: [chunk.name] });
  return packs;
}

/** The parameters of a chunk's function: those Node gives a CommonJS module. */
const CHUNK_PARAMS = 'exports, require, module, __filename, __dirname';

/**
 * A pack's text: an object literal, chunk name to the chunk's module function, each chunk's code
 * on lines of its own; and a source map of sections, one per chunk, with the chunk's own map.
 */
export function packText(pack: Pack, chunks: ReadonlyMap<string, BuiltChunk>): { code: string; map: string } {
  const lines: string[] = ['({'];
  const sections: { offset: { line: number; column: number }; map: unknown }[] = [];
  for (const name of pack.chunks) {
    const chunk = chunks.get(name);
    if (chunk === undefined) throw new Error(`pack ${pack.file} names no chunk ${name}`);
    lines.push(`${JSON.stringify(name)}: function (${CHUNK_PARAMS}) {`);
    sections.push({ offset: { line: lines.length, column: 0 }, map: JSON.parse(chunk.map) as unknown });
    lines.push(...chunk.code.replace(/\n$/, '').split('\n'), '},');
  }
  lines.push('})');
  return { code: `${lines.join('\n')}\n`, map: JSON.stringify({ version: 3, file: pack.file, sections }) };
}
