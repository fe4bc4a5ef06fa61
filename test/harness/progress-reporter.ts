/**
 * The node test runner's reporter for `npm test` (test/run-all.sh): one line per test file as
 * it ends, then every failure in full (the test's path of names and its error, or, for a file
 * that failed outside any test, what it wrote to stderr). The complete TAP goes to the log
 * directory through a second reporter; this one is what a person reads.
 *
 *   node --test --test-reporter=./dist/test/harness/progress-reporter.js --test-reporter-destination=stdout ...
 */
import path from 'node:path';
import { inspect } from 'node:util';
import type { TestEvent } from 'node:test/reporters';

interface FileTally {
  passed: number;
  failed: number;
  skipped: number;
  stderr: string[];
}

interface Failure {
  file: string;
  title: string;
  detail: string;
  /** Cancelled because its suite failed (a hook threw, a timeout): the suite's own failure says why. */
  cancelled: boolean;
}

/** Lines of a file's stderr shown when it failed outside any test. */
const STDERR_TAIL = 60;

function shortName(file: string): string {
  const base = path.join(process.cwd(), 'dist', 'test');
  return file.startsWith(`${base}${path.sep}`) ? path.relative(base, file) : file;
}

function indent(text: string): string {
  return text.replace(/^/gm, '    ');
}

function failureType(error: Error | undefined): string | undefined {
  return (error as (Error & { failureType?: string }) | undefined)?.failureType;
}

/** The error a test threw: node wraps it (failureType, cause); the cause is what the test saw. */
function describeError(error: Error | undefined): string {
  if (error === undefined) return '(no error recorded)';
  const cause = (error as Error & { cause?: unknown }).cause;
  return inspect(cause ?? error, { depth: 4, breakLength: 120 });
}

function fileLine(file: string, tally: FileTally): string {
  const counts = [`${tally.passed} passed`];
  if (tally.failed > 0) counts.push(`${tally.failed} failed`);
  if (tally.skipped > 0) counts.push(`${tally.skipped} skipped`);
  return `${tally.failed > 0 ? 'FAIL' : 'ok  '} ${shortName(file)} (${counts.join(', ')})\n`;
}

async function* progressReporter(source: AsyncIterable<TestEvent>): AsyncGenerator<string, void> {
  const tallies = new Map<string, FileTally>();
  const failures: Failure[] = [];
  /** Names of the tests being run, by nesting level, for a failure's title. */
  const names: string[] = [];
  const tally = (file: string): FileTally => {
    let t = tallies.get(file);
    if (t === undefined) tallies.set(file, (t = { passed: 0, failed: 0, skipped: 0, stderr: [] }));
    return t;
  };

  for await (const event of source) {
    switch (event.type) {
      case 'test:start':
        names[event.data.nesting] = event.data.name;
        names.length = event.data.nesting + 1;
        break;
      case 'test:stderr':
        if (event.data.file !== undefined) tally(event.data.file).stderr.push(event.data.message);
        break;
      case 'test:pass':
      case 'test:fail': {
        const { data } = event;
        const file = data.file;
        // The file's own entry is its end (test:complete).
        if (file === undefined || (data.nesting === 0 && data.name === file)) break;
        const t = tally(file);
        const title = [...names.slice(0, data.nesting), data.name].join(' › ');
        if (data.details.type === 'suite') {
          // Suites are counted through their tests, but a suite can fail by itself: a hook threw,
          // its body threw, it timed out.
          if (event.type === 'test:fail' && failureType(event.data.details.error) !== 'subtestsFailed') {
            t.failed += 1;
            failures.push({ file, title, detail: describeError(event.data.details.error), cancelled: false });
          }
          break;
        }
        if (event.type === 'test:pass') {
          if (data.skip !== undefined || data.todo !== undefined) t.skipped += 1;
          else t.passed += 1;
        } else {
          t.failed += 1;
          const error = event.data.details.error;
          failures.push({ file, title, detail: describeError(error), cancelled: failureType(error) === 'cancelledByParent' });
        }
        break;
      }
      case 'test:complete': {
        const { data } = event;
        if (data.file === undefined || data.nesting !== 0 || data.name !== data.file) break;
        const t = tally(data.file);
        if (!data.details.passed && t.failed === 0) {
          // The file failed outside any test (did not load, exited, timed out): its stderr says why.
          t.failed += 1;
          const stderr = t.stderr.join('').split('\n').slice(-STDERR_TAIL).join('\n');
          failures.push({ file: data.file, title: '(the file itself)', detail: `${describeError(data.details.error)}\n${stderr}`, cancelled: false });
        }
        yield fileLine(data.file, t);
        t.stderr = [];
        break;
      }
      default:
        break;
    }
  }

  if (failures.length === 0) return;
  // A file's cancelled tests are listed only when nothing else of that file failed to say why.
  const explained = new Set(failures.filter((f) => !f.cancelled).map((f) => f.file));
  const shown = failures.filter((f) => !f.cancelled || !explained.has(f.file));
  yield `\nFailures (${failures.length}${shown.length < failures.length ? `, ${failures.length - shown.length} cancelled tests not listed` : ''}):\n`;
  for (const failure of shown) yield `\n--- ${shortName(failure.file)}: ${failure.title}\n${indent(failure.detail)}\n`;
}

export = progressReporter;
