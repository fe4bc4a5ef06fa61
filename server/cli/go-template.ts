/**
 * The part of Go's text/template that `skopeo inspect --format` is used with: literal text,
 * `{{.Field}}`, `{{.Field.Key}}`, `{{json .Field}}` and the `{{-`/`-}}` trim markers, printed as
 * Go's fmt prints values. The format is normalised as containers/common's report package does
 * (a leading "table " dropped, `\t` and `\n` written out, a final newline added). Anything else
 * (pipelines, functions, conditions, ranges) is refused when the format is parsed, before the
 * image is opened.
 */
import { UsageError } from './flags';
import { goJsonCompact, type GoJsonValue } from './go-json';

export type TemplatePart = { readonly text: string } | { readonly path: readonly string[]; readonly json: boolean };

/** How a field is printed with fmt's %v (`{{.X}}`) and json.Marshal (`{{json .X}}`). */
export interface TemplateField {
  readonly text: string;
  readonly json: GoJsonValue;
}

/** The data a template runs on: undefined for a path that is no field (an error), a field, or a map's missing key. */
export type TemplateLookup = (path: readonly string[]) => TemplateField | 'no value' | undefined;

const ACTION = /^(json\s+)?((?:\.[A-Za-z_][A-Za-z0-9_]*)+)$/;

function unsupported(action: string): UsageError {
  return new UsageError(`--format: {{${action}}} is not supported: layerpipe takes {{.Field}}, {{.Field.Key}} and {{json .Field}} (and literal text)`);
}

/** Parses `format`; `lookup` (with no image yet) rejects fields the output does not have. */
export function parseGoTemplate(format: string, isField: (path: readonly string[]) => boolean): TemplatePart[] {
  let text = format.replace(/^table\s+/, '').replace(/\\t/g, '\t').replace(/\\n/g, '\n');
  if (!text.endsWith('\n')) text += '\n';
  const parts: TemplatePart[] = [];
  let literal = '';
  let rest = text;
  for (;;) {
    const open = rest.indexOf('{{');
    if (open < 0) break;
    const close = rest.indexOf('}}', open + 2);
    if (close < 0) throw new UsageError(`--format: unclosed action at ${JSON.stringify(rest.slice(open, open + 20))}`);
    let before = rest.slice(0, open);
    let action = rest.slice(open + 2, close);
    let after = rest.slice(close + 2);
    if (action.startsWith('-') && /^-\s/.test(action)) {
      before = before.trimEnd();
      action = action.slice(1);
    }
    if (/\s-$/.test(action)) {
      after = after.trimStart();
      action = action.slice(0, -1);
    }
    literal += before;
    const m = ACTION.exec(action.trim());
    if (m === null) throw unsupported(action.trim());
    const path = m[2]!.slice(1).split('.');
    if (!isField(path)) throw new UsageError(`--format: ${m[2]} is not a field of the output`);
    if (literal !== '') parts.push({ text: literal });
    literal = '';
    parts.push({ path, json: m[1] !== undefined });
    rest = after;
  }
  literal += rest;
  if (literal !== '') parts.push({ text: literal });
  return parts;
}

export function renderGoTemplate(parts: readonly TemplatePart[], lookup: TemplateLookup): string {
  return parts.map((p) => {
    if ('text' in p) return p.text;
    const field = lookup(p.path);
    if (field === undefined) throw new UsageError(`--format: .${p.path.join('.')} is not a field of the output`);
    if (field === 'no value') return p.json ? 'null' : '<no value>';
    return p.json ? goJsonCompact(field.json) : field.text;
  }).join('');
}

/** fmt's %v of a string, a []string or a map[string]string. */
export function goSprint(value: string | readonly string[] | ReadonlyMap<string, string>): string {
  if (typeof value === 'string') return value;
  if (value instanceof Map) return `map[${[...(value as ReadonlyMap<string, string>)].map(([k, v]) => `${k}:${v}`).join(' ')}]`;
  return `[${(value as readonly string[]).join(' ')}]`;
}

/** time.Time's String() for a time Go wrote as JSON (RFC 3339): "2024-05-01 10:20:30.1 +0000 UTC". */
export function goTimeString(rfc3339: string): string {
  const m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d(?:\.\d+)?)(Z|([+-])(\d\d):(\d\d))$/.exec(rfc3339);
  if (m === null) return rfc3339;
  if (m[3] === 'Z') return `${m[1]} ${m[2]} +0000 UTC`;
  const offset = `${m[4]}${m[5]}${m[6]}`;
  return `${m[1]} ${m[2]} ${offset} ${offset}`;
}
