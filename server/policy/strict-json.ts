/**
 * A JSON reader that keeps every member of an object in order, duplicates included, so that
 * policy files and signature payloads can be checked the way containers/image checks them:
 * JSON.parse would silently keep the last of two "default" keys, which is not acceptable for
 * a security policy. Values are plain data; checks are the callers'.
 */

export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;

/** An object's members as written; `members` may hold one key twice. */
export class JsonObject {
  constructor(readonly members: ReadonlyArray<readonly [string, JsonValue]>) {}
}

/** Malformed JSON text; the message says where. */
export class JsonSyntaxError extends Error {}

const MAX_DEPTH = 64;

class Reader {
  pos = 0;
  constructor(private readonly text: string) {}

  fail(what: string): never {
    throw new JsonSyntaxError(`invalid JSON at offset ${this.pos}: ${what}`);
  }

  skipSpace(): void {
    while (this.pos < this.text.length && ' \t\n\r'.includes(this.text[this.pos]!)) this.pos++;
  }

  value(depth: number): JsonValue {
    if (depth > MAX_DEPTH) this.fail('nested too deeply');
    this.skipSpace();
    const c = this.text[this.pos];
    switch (c) {
      case '{': return this.object(depth);
      case '[': return this.array(depth);
      case '"': return this.string();
      case 't': return this.literal('true', true);
      case 'f': return this.literal('false', false);
      case 'n': return this.literal('null', null);
      case undefined: return this.fail('unexpected end of input');
      default:
        if (c === '-' || (c >= '0' && c <= '9')) return this.number();
        return this.fail(`unexpected character ${JSON.stringify(c)}`);
    }
  }

  literal<T>(word: string, v: T): T {
    if (!this.text.startsWith(word, this.pos)) this.fail(`expected ${word}`);
    this.pos += word.length;
    return v;
  }

  number(): number {
    const m = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
    m.lastIndex = this.pos;
    const found = m.exec(this.text);
    if (found === null) this.fail('malformed number');
    this.pos += found[0].length;
    return Number(found[0]);
  }

  string(): string {
    const m = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y;
    m.lastIndex = this.pos;
    const found = m.exec(this.text);
    if (found === null) this.fail('malformed string');
    this.pos += found[0].length;
    return JSON.parse(found[0]) as string;
  }

  array(depth: number): JsonValue[] {
    this.pos++;
    const out: JsonValue[] = [];
    this.skipSpace();
    if (this.text[this.pos] === ']') {
      this.pos++;
      return out;
    }
    for (;;) {
      out.push(this.value(depth + 1));
      this.skipSpace();
      const c = this.text[this.pos++];
      if (c === ']') return out;
      if (c !== ',') this.fail('expected "," or "]"');
    }
  }

  object(depth: number): JsonObject {
    this.pos++;
    const members: [string, JsonValue][] = [];
    this.skipSpace();
    if (this.text[this.pos] === '}') {
      this.pos++;
      return new JsonObject(members);
    }
    for (;;) {
      this.skipSpace();
      if (this.text[this.pos] !== '"') this.fail('expected a string key');
      const key = this.string();
      this.skipSpace();
      if (this.text[this.pos++] !== ':') this.fail('expected ":"');
      members.push([key, this.value(depth + 1)]);
      this.skipSpace();
      const c = this.text[this.pos++];
      if (c === '}') return new JsonObject(members);
      if (c !== ',') this.fail('expected "," or "}"');
    }
  }
}

/** Parses one JSON document; trailing non-space text is an error. */
export function parseStrictJson(text: string): JsonValue {
  const r = new Reader(text);
  const v = r.value(0);
  r.skipSpace();
  if (r.pos !== text.length) r.fail('unexpected text after the value');
  return v;
}

/** The JSON type name of a value, for messages. */
export function jsonTypeOf(v: JsonValue): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (v instanceof JsonObject) return 'object';
  return typeof v;
}

/**
 * An object's members as a map, refusing a key given twice and a key `known` does not accept,
 * in containers/image's words ("Duplicate key", "Unknown key").
 */
export function strictMembers(v: JsonValue, what: string, known: (key: string) => boolean, fail: (message: string) => never): Map<string, JsonValue> {
  if (!(v instanceof JsonObject)) fail(`${what} must be a JSON object, not ${jsonTypeOf(v)}`);
  const out = new Map<string, JsonValue>();
  for (const [key, value] of v.members) {
    if (out.has(key)) fail(`Duplicate key ${JSON.stringify(key)}`);
    if (!known(key)) fail(`Unknown key ${JSON.stringify(key)}`);
    out.set(key, value);
  }
  return out;
}

/** strictMembers for an object whose keys must be exactly `fields`. */
export function exactMembers(v: JsonValue, what: string, fields: readonly string[], fail: (message: string) => never): Map<string, JsonValue> {
  const out = strictMembers(v, what, (k) => fields.includes(k), fail);
  for (const f of fields) if (!out.has(f)) fail(`Key ${JSON.stringify(f)} missing in a JSON object`);
  return out;
}
