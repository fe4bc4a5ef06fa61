/**
 * The OCI image config as skopeo hands it out: the stored config (OCI or Docker) read into the
 * OCI image-spec shape and serialised again, byte for byte as Go's encoding/json writes it.
 *
 * Byte equality matters: a converted Docker manifest names these bytes (their digest) as its
 * config, and clients check that digest against what GetFullConfig returns.
 */
import { UnsupportedError } from '../../protocol/errors';

type Kind =
  | 'string' | 'bool' | 'time' | 'stringList' | 'stringSet' | 'stringMap'
  | { struct: Schema } | { list: Schema };
interface Field {
  readonly key: string;
  readonly kind: Kind;
  readonly omitEmpty: boolean;
}
type Schema = readonly Field[];

const f = (key: string, kind: Kind, omitEmpty = true): Field => ({ key, kind, omitEmpty });

// Field order and omitempty follow the image-spec Go structs of the skopeo 1.9.3 we compare
// with: Debian's build, whose image-spec (1.1.0~rc2) also carries ArgsEscaped, so a config
// from `docker build` keeps it, as skopeo's output does.
const IMAGE_CONFIG: Schema = [
  f('User', 'string'), f('ExposedPorts', 'stringSet'), f('Env', 'stringList'), f('Entrypoint', 'stringList'),
  f('Cmd', 'stringList'), f('Volumes', 'stringSet'), f('WorkingDir', 'string'), f('Labels', 'stringMap'),
  f('StopSignal', 'string'), f('ArgsEscaped', 'bool'),
];
const ROOTFS: Schema = [f('type', 'string', false), f('diff_ids', 'stringList', false)];
const HISTORY: Schema = [
  f('created', 'time'), f('created_by', 'string'), f('author', 'string'), f('comment', 'string'), f('empty_layer', 'bool'),
];
const IMAGE: Schema = [
  f('created', 'time'), f('author', 'string'), f('architecture', 'string', false), f('variant', 'string'),
  f('os', 'string', false), f('os.version', 'string'), f('os.features', 'stringList'),
  f('config', { struct: IMAGE_CONFIG }), f('rootfs', { struct: ROOTFS }, false), f('history', { list: HISTORY }),
];

/** A decoded Go value: undefined stands for Go's zero value / nil. */
type Decoded = string | boolean | string[] | Map<string, string | null> | DecodedStruct | DecodedStruct[] | undefined;
interface DecodedStruct {
  readonly schema: Schema;
  readonly values: Map<string, Decoded>;
}

function typeError(path: string, want: string, got: unknown): UnsupportedError {
  const kind = got === null ? 'null' : Array.isArray(got) ? 'array' : typeof got;
  return new UnsupportedError(`parsing image config: cannot read ${kind} into ${path} (${want})`);
}

function decodeValue(kind: Kind, value: unknown, path: string): Decoded {
  if (value === null) return undefined; // Go leaves the zero value in place for null.
  if (kind === 'string' || kind === 'time') {
    if (typeof value !== 'string') throw typeError(path, 'string', value);
    if (kind === 'time') return formatGoTime(value, path);
    return value;
  }
  if (kind === 'bool') {
    if (typeof value !== 'boolean') throw typeError(path, 'bool', value);
    return value;
  }
  if (kind === 'stringList') {
    if (!Array.isArray(value)) throw typeError(path, 'array of strings', value);
    return value.map((v, i) => {
      if (v === null) return '';
      if (typeof v !== 'string') throw typeError(`${path}[${i}]`, 'string', v);
      return v;
    });
  }
  if (kind === 'stringSet' || kind === 'stringMap') {
    if (typeof value !== 'object' || Array.isArray(value)) throw typeError(path, 'object', value);
    const out = new Map<string, string | null>();
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      if (kind === 'stringMap') {
        if (v !== null && typeof v !== 'string') throw typeError(`${path}.${k}`, 'string', v);
        out.set(k, v ?? '');
      } else {
        if (v !== null && (typeof v !== 'object' || Array.isArray(v))) throw typeError(`${path}.${k}`, 'object', v);
        out.set(k, null);
      }
    }
    return out;
  }
  if ('struct' in kind) {
    if (typeof value !== 'object' || Array.isArray(value)) throw typeError(path, 'object', value);
    return decodeStruct(kind.struct, value as Record<string, unknown>, path);
  }
  if (!Array.isArray(value)) throw typeError(path, 'array', value);
  return value.map((v, i) => {
    if (v === null) return { schema: kind.list, values: new Map() };
    if (typeof v !== 'object' || Array.isArray(v)) throw typeError(`${path}[${i}]`, 'object', v);
    return decodeStruct(kind.list, v as Record<string, unknown>, `${path}[${i}]`);
  });
}

/** Go matches JSON keys to fields exactly first, then case-insensitively; later keys win. */
function decodeStruct(schema: Schema, obj: Record<string, unknown>, path: string): DecodedStruct {
  const values = new Map<string, Decoded>();
  for (const [key, value] of Object.entries(obj)) {
    const field = schema.find((fl) => fl.key === key) ?? schema.find((fl) => fl.key.toLowerCase() === key.toLowerCase());
    if (field === undefined) continue;
    const decoded = decodeValue(field.kind, value, path === '' ? field.key : `${path}.${field.key}`);
    if (decoded !== undefined || value === null) values.set(field.key, decoded);
  }
  return { schema, values };
}

const HEX = '0123456789abcdef';

/**
 * A string as Go 1.19's encoding/json writes it (the Go of the skopeo we compare with):
 * control characters other than \n \r \t as \u00XX (so \b and \f too), the HTML-sensitive
 * <, > and & and the line separators U+2028/U+2029 escaped, everything else raw. A lone
 * surrogate cannot have come from Go's decoder, which turns it into U+FFFD; so does this.
 */
export function goJsonString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += '\\\\';
    else if (c === 0x0a) out += '\\n';
    else if (c === 0x0d) out += '\\r';
    else if (c === 0x09) out += '\\t';
    else if (c < 0x20 || c === 0x3c || c === 0x3e || c === 0x26) out += `\\u00${HEX[c >> 4]}${HEX[c & 0xf]}`;
    else if (c === 0x2028 || c === 0x2029) out += `\\u${c.toString(16)}`;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      out += s[i]! + s[i + 1]!;
      i++;
    } else if (c >= 0xd800 && c <= 0xdfff) out += '\ufffd';
    else out += s[i]!;
  }
  return `${out}"`;
}

function isEmpty(v: Decoded): boolean {
  if (v === undefined || v === '' || v === false) return true;
  if (Array.isArray(v)) return v.length === 0;
  if (v instanceof Map) return v.size === 0;
  return false; // structs are never "empty" to omitempty
}

function encodeValue(kind: Kind, v: Decoded): string {
  if (kind === 'string' || kind === 'time') return v === undefined ? (kind === 'time' ? 'null' : '""') : goJsonString(v as string);
  if (kind === 'bool') return v === true ? 'true' : 'false';
  if (kind === 'stringList') return v === undefined ? 'null' : `[${(v as string[]).map(goJsonString).join(',')}]`;
  if (kind === 'stringSet' || kind === 'stringMap') {
    if (v === undefined) return 'null';
    const m = v as Map<string, string | null>;
    const keys = [...m.keys()].sort(compareUtf8);
    return `{${keys.map((k) => `${goJsonString(k)}:${kind === 'stringSet' ? '{}' : goJsonString(m.get(k) ?? '')}`).join(',')}}`;
  }
  if ('struct' in kind) return encodeStruct(kind.struct, v as DecodedStruct | undefined);
  if (v === undefined) return 'null';
  return `[${(v as DecodedStruct[]).map((s) => encodeStruct(kind.list, s)).join(',')}]`;
}

function encodeStruct(schema: Schema, s: DecodedStruct | undefined): string {
  const parts: string[] = [];
  for (const field of schema) {
    const v = s?.values.get(field.key);
    if (field.omitEmpty && isEmpty(v) && typeof field.kind === 'string') continue;
    if (field.omitEmpty && typeof field.kind === 'object' && 'list' in field.kind && isEmpty(v)) continue;
    parts.push(`${goJsonString(field.key)}:${encodeValue(field.kind, v)}`);
  }
  return `{${parts.join(',')}}`;
}

/** Go sorts map keys by their UTF-8 bytes. */
function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * Parses a time as Go's time.Time.UnmarshalJSON does (RFC 3339: upper-case T and Z, any
 * number of fraction digits, truncated to nanoseconds; fields range-checked) and writes it
 * back as MarshalJSON does (RFC 3339 with the shortest fraction, "Z" for a zero offset).
 */
function formatGoTime(value: string, path: string): string {
  const fail = (why: string) => new UnsupportedError(`parsing image config: ${path}: cannot parse ${JSON.stringify(value)} as RFC 3339 time${why}`);
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$/.exec(value);
  if (m === null) throw fail('');
  const [, y, mo, d, h, mi, s, frac, zone] = m as unknown as string[];
  const year = Number(y);
  const month = Number(mo);
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const days = month === 2 && leap ? 29 : (DAYS_IN_MONTH[month - 1] ?? 0);
  if (month < 1 || month > 12) throw fail(': month out of range');
  if (Number(d) < 1 || Number(d) > days) throw fail(': day out of range');
  if (Number(h) > 23) throw fail(': hour out of range');
  if (Number(mi) > 59) throw fail(': minute out of range');
  if (Number(s) > 59) throw fail(': second out of range');
  const fraction = (frac ?? '').slice(0, 9).replace(/0+$/, '');
  const z = zone === '+00:00' || zone === '-00:00' ? 'Z' : zone!;
  return `${y}-${mo}-${d}T${h}:${mi}:${s}${fraction === '' ? '' : `.${fraction}`}${z}`;
}

/** The full OCI config bytes GetFullConfig returns, from the stored config (OCI or Docker). */
export function ociConfigBytes(stored: Buffer): Buffer {
  return Buffer.from(encodeStruct(IMAGE, decodeStoredConfig(stored)), 'utf8');
}

/** Only the `config` member, as GetConfig returns it. */
export function ociRuntimeConfigBytes(stored: Buffer): Buffer {
  const image = decodeStoredConfig(stored);
  return Buffer.from(encodeStruct(IMAGE_CONFIG, image.values.get('config') as DecodedStruct | undefined), 'utf8');
}

function decodeStoredConfig(stored: Buffer): DecodedStruct {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stored.toString('utf8'));
  } catch (err) {
    throw new UnsupportedError(`parsing image config: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new UnsupportedError('parsing image config: not a JSON object');
  }
  return decodeStruct(IMAGE, parsed as Record<string, unknown>, '');
}
