/**
 * JSON as skopeo prints it: Go's encoding/json with MarshalIndent(v, "", "    "). Strings are
 * escaped as Go escapes them (goJsonString), object members keep the order they are given in
 * (Go writes struct fields in declaration order; maps are sorted by the caller), and nothing
 * else is reformatted, so compact JSON that Go wrote can be indented here without a reparse.
 */
import { goJsonString } from '../image/config';

/** A value the encoder writes: JSON's, with `null` for Go's nil slices, maps and pointers. */
export type GoJsonValue =
  | string
  | number
  | boolean
  | null
  | readonly GoJsonValue[]
  /** A Go map: a Map keeps its keys in order even when they look like array indexes. */
  | ReadonlyMap<string, GoJsonValue>
  | { readonly [key: string]: GoJsonValue };

/** Compact JSON of `value`, members in insertion order, strings escaped as Go escapes them. */
export function goJsonCompact(value: GoJsonValue): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return goJsonString(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return `[${(value as readonly GoJsonValue[]).map(goJsonCompact).join(',')}]`;
  const members = value instanceof Map ? [...(value as ReadonlyMap<string, GoJsonValue>)] : Object.entries(value as { readonly [key: string]: GoJsonValue });
  return `{${members.map(([k, v]) => `${goJsonString(k)}:${goJsonCompact(v)}`).join(',')}}`;
}

/**
 * Re-indents compact JSON as Go's json.Indent does with a four-space indent: a member or
 * element per line, `": "` after keys, `{}` and `[]` kept on one line. String contents are
 * copied byte for byte.
 */
export function goJsonIndent(compact: string): string {
  let out = '';
  let depth = 0;
  let inString = false;
  const newline = (): string => `\n${'    '.repeat(depth)}`;
  for (let i = 0; i < compact.length; i++) {
    const c = compact[i]!;
    if (inString) {
      out += c;
      if (c === '\\') out += compact[++i] ?? '';
      else if (c === '"') inString = false;
      continue;
    }
    switch (c) {
      case '"':
        inString = true;
        out += c;
        break;
      case '{':
      case '[': {
        const close = c === '{' ? '}' : ']';
        if (compact[i + 1] === close) {
          out += c + close;
          i++;
        } else {
          depth++;
          out += c + newline();
        }
        break;
      }
      case '}':
      case ']':
        depth--;
        out += newline() + c;
        break;
      case ',':
        out += c + newline();
        break;
      case ':':
        out += ': ';
        break;
      case ' ':
      case '\n':
      case '\r':
      case '\t':
        break;
      default:
        out += c;
    }
  }
  return out;
}

/** What skopeo prints for `value`: indented, with a final newline. */
export function goJsonPrint(value: GoJsonValue): string {
  return `${goJsonIndent(goJsonCompact(value))}\n`;
}

/** A Go map[string]T as Go's encoder writes it: keys sorted by their UTF-8 bytes. */
export function sortedGoMap<T extends GoJsonValue>(entries: Iterable<readonly [string, T]>): Map<string, T> {
  const list = [...entries].sort(([a], [b]) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
  return new Map(list);
}
