/**
 * The fenced code blocks of the project's READMEs, for test/e2e/readme-examples.test.ts.
 *
 * A block's info string is its language, then attributes a renderer ignores:
 *   ```sh skip=registry       not run, for the reason SKIP_REASONS gives
 *   ```bash id=stdio-session  named, so the test can check more than its exit status
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

export interface CodeBlock {
  /** The README, relative to the repository root. */
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  /** The info string's first word, lower-cased; '' when there is none. */
  lang: string;
  /** The info string's other words: `key=value`, or `key` alone (value ''). */
  attrs: ReadonlyMap<string, string>;
  code: string;
}

/** The READMEs whose examples are tested: the top-level one, each client's and each example's. */
export function readmeFiles(root: string): string[] {
  const files = ['README.md'];
  for (const dir of ['clients', 'examples']) {
    for (const entry of readdirSync(path.join(root, dir)).sort()) {
      const readme = path.join(dir, entry, 'README.md');
      if (existsSync(path.join(root, readme))) files.push(readme);
    }
  }
  return files;
}

function parseInfo(info: string): { lang: string; attrs: Map<string, string> } {
  const [lang = '', ...words] = info.trim().split(/\s+/).filter((w) => w !== '');
  const attrs = new Map<string, string>();
  for (const word of words) {
    const eq = word.indexOf('=');
    if (eq < 0) attrs.set(word, '');
    else attrs.set(word.slice(0, eq), word.slice(eq + 1));
  }
  return { lang: lang.toLowerCase(), attrs };
}

/** The fenced (```) blocks of one markdown file, in order; a block inside a list item loses its indentation. */
export function codeBlocks(root: string, file: string): CodeBlock[] {
  const lines = readFileSync(path.join(root, file), 'utf8').split('\n');
  const blocks: CodeBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^( *)(`{3,})([^`]*)$/.exec(lines[i]!);
    if (open === null) continue;
    const [, indent, fence, info] = open as unknown as [string, string, string, string];
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      if (new RegExp(`^ *${fence}\`*\\s*$`).test(lines[j]!)) break;
      body.push(lines[j]!.startsWith(indent) ? lines[j]!.slice(indent.length) : lines[j]!);
    }
    const { lang, attrs } = parseInfo(info);
    blocks.push({ file, line: i + 1, lang, attrs, code: `${body.join('\n')}\n` });
    i = j;
  }
  return blocks;
}
