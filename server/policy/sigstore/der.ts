/**
 * A strict DER reader, enough for the X.509 fields sigstore verification needs that node's
 * X509Certificate does not expose (extensions by OID, raw names, exact validity times).
 * Input is untrusted: indefinite or non-minimal lengths, high tag numbers and values running
 * past their parent are refused with DerError, never read past.
 */

/** Malformed DER; the message says what and where. */
export class DerError extends Error {}

export const Tag = {
  boolean: 0x01,
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  null: 0x05,
  oid: 0x06,
  utf8String: 0x0c,
  printableString: 0x13,
  ia5String: 0x16,
  utcTime: 0x17,
  generalizedTime: 0x18,
  sequence: 0x30,
  set: 0x31,
} as const;

/** One type-length-value. `bytes` is the whole encoding, `content` the value. */
export interface Tlv {
  readonly tag: number;
  readonly bytes: Buffer;
  readonly content: Buffer;
}

/** Reads the TLV at `offset` of `buf`; returns it and the offset after it. */
export function readTlv(buf: Buffer, offset: number, what: string): { tlv: Tlv; next: number } {
  if (offset + 2 > buf.length) throw new DerError(`${what}: truncated`);
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError(`${what}: high tag numbers are not used here`);
  let length = buf[offset + 1]!;
  let pos = offset + 2;
  if (length & 0x80) {
    const n = length & 0x7f;
    if (n === 0) throw new DerError(`${what}: indefinite length`);
    if (n > 4) throw new DerError(`${what}: length too large`);
    if (pos + n > buf.length) throw new DerError(`${what}: truncated length`);
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + buf[pos + i]!;
    if (buf[pos] === 0 || length < 0x80) throw new DerError(`${what}: non-minimal length`);
    pos += n;
  }
  if (pos + length > buf.length) throw new DerError(`${what}: value runs past its end`);
  return { tlv: { tag, bytes: buf.subarray(offset, pos + length), content: buf.subarray(pos, pos + length) }, next: pos + length };
}

/** Parses `buf` as exactly one TLV (nothing after it). */
export function parseDer(buf: Buffer, what: string): Tlv {
  const { tlv, next } = readTlv(buf, 0, what);
  if (next !== buf.length) throw new DerError(`${what}: trailing data`);
  return tlv;
}

/** The TLVs inside a constructed value. */
export function childrenOf(tlv: Tlv, what: string): Tlv[] {
  if ((tlv.tag & 0x20) === 0) throw new DerError(`${what}: not a constructed value`);
  const out: Tlv[] = [];
  for (let pos = 0; pos < tlv.content.length;) {
    const { tlv: child, next } = readTlv(tlv.content, pos, what);
    out.push(child);
    pos = next;
  }
  return out;
}

export function expectTag(tlv: Tlv | undefined, tag: number, what: string): Tlv {
  if (tlv === undefined) throw new DerError(`${what}: missing`);
  if (tlv.tag !== tag) throw new DerError(`${what}: expected tag 0x${tag.toString(16)}, got 0x${tlv.tag.toString(16)}`);
  return tlv;
}

/** Dotted form of an OBJECT IDENTIFIER's content. */
export function oidString(tlv: Tlv, what: string): string {
  const c = expectTag(tlv, Tag.oid, what).content;
  if (c.length === 0) throw new DerError(`${what}: empty OID`);
  const arcs: number[] = [];
  let value = 0;
  for (let i = 0; i < c.length; i++) {
    const b = c[i]!;
    if (value === 0 && b === 0x80) throw new DerError(`${what}: non-minimal OID arc`);
    value = value * 128 + (b & 0x7f);
    if (value > Number.MAX_SAFE_INTEGER / 128) throw new DerError(`${what}: OID arc too large`);
    if ((b & 0x80) === 0) {
      arcs.push(value);
      value = 0;
    } else if (i === c.length - 1) {
      throw new DerError(`${what}: truncated OID`);
    }
  }
  const first = arcs[0]!;
  const head = first < 40 ? [0, first] : first < 80 ? [1, first - 40] : [2, first - 80];
  return [...head, ...arcs.slice(1)].join('.');
}

/** A string type's text (UTF8String, PrintableString, IA5String), as Go's asn1 decodes into a string. */
export function stringValue(tlv: Tlv, what: string): string {
  switch (tlv.tag) {
    case Tag.utf8String: {
      const text = tlv.content.toString('utf8');
      if (!Buffer.from(text, 'utf8').equals(tlv.content)) throw new DerError(`${what}: invalid UTF-8`);
      return text;
    }
    case Tag.printableString:
    case Tag.ia5String:
      if (!/^[\x00-\x7f]*$/.test(tlv.content.toString('latin1'))) throw new DerError(`${what}: not ASCII`);
      return tlv.content.toString('latin1');
    default:
      throw new DerError(`${what}: not a string (tag 0x${tlv.tag.toString(16)})`);
  }
}

/** UTCTime or GeneralizedTime, in the forms X.509 requires (seconds, "Z"). */
export function timeValue(tlv: Tlv, what: string): Date {
  const text = tlv.content.toString('latin1');
  let m: RegExpExecArray | null;
  let year: number;
  if (tlv.tag === Tag.utcTime && (m = /^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(text)) !== null) {
    const yy = Number(m[1]);
    year = yy < 50 ? 2000 + yy : 1900 + yy;
  } else if (tlv.tag === Tag.generalizedTime && (m = /^(\d\d\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(text)) !== null) {
    year = Number(m[1]);
  } else {
    throw new DerError(`${what}: malformed time ${JSON.stringify(text)}`);
  }
  const [month, day, hour, minute, second] = [m[2], m[3], m[4], m[5], m[6]].map(Number) as [number, number, number, number, number];
  const date = new Date(Date.UTC(year, month - 1, day, hour, minute, second));
  if (date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day || hour > 23 || minute > 59 || second > 59) {
    throw new DerError(`${what}: invalid time ${JSON.stringify(text)}`);
  }
  return date;
}
