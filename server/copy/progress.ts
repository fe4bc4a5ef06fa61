/**
 * Showing a copy's progress: bars (one per blob and a total) redrawn in place on a terminal,
 * one line per event elsewhere (logs, CI), or nothing (--quiet). A dozen lines of ANSI cursor
 * movement do what is needed here, so no progress library is pulled in.
 */
import type { BlobOutcome } from './blob-file';
import type { CopyEvents } from './copy-image';

/** Where progress goes: a stream, and whether it is a terminal and how wide. */
export interface ProgressOutput {
  write(text: string): void;
  readonly isTTY?: boolean | undefined;
  readonly columns?: number | undefined;
}

const REDRAW_INTERVAL_MS = 100;

function shortDigest(digest: string): string {
  const colon = digest.indexOf(':');
  return digest.slice(colon + 1, colon + 13);
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${n} B` : `${value.toFixed(1)} ${units[unit]}`;
}

function describeOutcome(outcome: BlobOutcome): string {
  if (outcome.kind === 'present') return 'skipped: already exists';
  const resumed = outcome.resumedFrom > 0 ? `, resumed at byte ${outcome.resumedFrom}` : '';
  return `done (${outcome.fetched} bytes fetched${resumed})`;
}

export function quietProgress(): CopyEvents {
  return { planned() {}, blobStarted() {}, blobAdvanced() {}, blobFinished() {}, publishing() {} };
}

/** One line per event, in the words skopeo uses where it has them. */
export function lineProgress(out: ProgressOutput): CopyEvents {
  const roles = new Map<string, string>();
  return {
    planned(blobs) {
      out.write('Getting image source signatures\n');
      for (const b of blobs) roles.set(b.digest, b.role === 'config' ? 'config' : 'blob');
    },
    blobStarted(digest, resumedFrom) {
      out.write(`Copying ${roles.get(digest) ?? 'blob'} ${digest}${resumedFrom > 0 ? ` (resuming at byte ${resumedFrom})` : ''}\n`);
    },
    blobAdvanced() {},
    blobFinished(digest, outcome) {
      out.write(`Copying ${roles.get(digest) ?? 'blob'} ${digest} ${describeOutcome(outcome)}\n`);
    },
    publishing() {
      out.write('Writing manifest to image destination\n');
    },
  };
}

interface Bar {
  readonly label: string;
  readonly size: number;
  done: number;
  state: string;
}

function barLine(label: string, done: number, size: number, state: string, width: number): string {
  const fraction = size > 0 ? Math.min(1, done / size) : state === '' ? 0 : 1;
  const text = `${formatBytes(done)} / ${formatBytes(Math.max(size, 0))}${state === '' ? '' : ` ${state}`}`;
  const barWidth = Math.max(10, Math.min(40, width - label.length - text.length - 6));
  const filled = Math.round(fraction * barWidth);
  return `${label} [${'='.repeat(filled)}${' '.repeat(barWidth - filled)}] ${text}`.slice(0, width - 1);
}

/** Bars redrawn in place, at most every REDRAW_INTERVAL_MS, and once more at the end. */
export function barProgress(out: ProgressOutput, now: () => number = Date.now): CopyEvents {
  const bars = new Map<string, Bar>();
  let drawnLines = 0;
  let lastDraw = 0;
  const draw = (force: boolean): void => {
    const t = now();
    if (!force && t - lastDraw < REDRAW_INTERVAL_MS) return;
    lastDraw = t;
    // A pseudo-terminal without a size reports 0 columns: assume the classic 80.
    const width = out.columns !== undefined && out.columns >= 40 ? out.columns : 80;
    const lines = [...bars.values()].map((b) => barLine(b.label, b.done, b.size, b.state, width));
    const total = [...bars.values()].reduce((acc, b) => ({ done: acc.done + b.done, size: acc.size + Math.max(b.size, 0) }), { done: 0, size: 0 });
    const finished = [...bars.values()].filter((b) => b.state !== '' && b.state !== 'resuming').length;
    lines.push(barLine(`total ${finished}/${bars.size}   `, total.done, total.size, '', width));
    const up = drawnLines > 0 ? `\x1b[${drawnLines}A` : '';
    out.write(`${up}${lines.map((l) => `\r\x1b[2K${l}\n`).join('')}`);
    drawnLines = lines.length;
  };
  return {
    planned(blobs) {
      for (const b of blobs) bars.set(b.digest, { label: `${b.role === 'config' ? 'config' : 'blob  '} ${shortDigest(b.digest)}`, size: b.size, done: 0, state: '' });
      draw(true);
    },
    blobStarted(digest, resumedFrom) {
      const bar = bars.get(digest);
      if (bar === undefined) return;
      bar.done = resumedFrom;
      if (resumedFrom > 0) bar.state = 'resuming';
      draw(false);
    },
    blobAdvanced(digest, bytes) {
      const bar = bars.get(digest);
      if (bar !== undefined) bar.done += bytes;
      draw(false);
    },
    blobFinished(digest, outcome) {
      const bar = bars.get(digest);
      if (bar === undefined) return;
      bar.done = bar.size >= 0 ? bar.size : bar.done;
      bar.state = outcome.kind === 'present' ? 'skipped' : 'done';
      draw(false);
    },
    publishing() {
      draw(true);
      out.write('Writing manifest to image destination\n');
    },
  };
}
