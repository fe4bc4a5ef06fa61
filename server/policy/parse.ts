/**
 * containers-policy.json(5) parsed as strictly as containers/image parses it: unknown and
 * duplicate keys, a missing "default", empty requirement lists, wrong types and invalid
 * scopes are errors, in that library's words where it has them. The result is checked
 * completely here, so evaluation never meets a malformed requirement.
 */
import { isValidDomain } from '../reference/grammar';
import { parseNormalizedNamed } from '../reference/docker-reference';
import { scopeProblem } from './scopes';
import { exactMembers, jsonTypeOf, parseStrictJson, strictMembers, JsonSyntaxError, type JsonValue } from './strict-json';
import type { FulcioTrust, IdentityMatch, KeySource, PemSource, Policy, Requirement, SigstoreTrust } from './types';

/** What is wrong with a policy document; the loader adds the file name. */
export class PolicyFormatError extends Error {}

function fail(message: string): never {
  throw new PolicyFormatError(message);
}

function stringValue(v: JsonValue | undefined, what: string): string {
  if (typeof v !== 'string') fail(`${what} must be a string, not ${v === undefined ? 'missing' : jsonTypeOf(v)}`);
  return v;
}

function arrayValue(v: JsonValue, what: string): JsonValue[] {
  if (!Array.isArray(v)) fail(`${what} must be a JSON array, not ${jsonTypeOf(v)}`);
  return v;
}

/** Go's []byte JSON form: standard base64 with padding; anything else is refused. */
function base64Value(v: JsonValue, what: string): Buffer {
  const s = stringValue(v, what);
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(s)) fail(`illegal base64 data in ${what}`);
  return Buffer.from(s, 'base64');
}

const KEY_TYPES = ['GPGKeys', 'signedByGPGKeys', 'X509Certificates', 'signedByX509CAs'];

function typeOf(v: JsonValue, what: string): string {
  const m = strictMembers(v, what, () => true, fail);
  return stringValue(m.get('type') ?? '', `"type" of ${what}`);
}

/** A docker reference as a policy names one (exactReference, exactRepository), in the reference library's grammar. */
function policyDockerName(value: string, field: string): ReturnType<typeof parseNormalizedNamed> {
  try {
    return parseNormalizedNamed(value);
  } catch (err) {
    return fail(`Invalid format of ${field} ${JSON.stringify(value)}: ${(err as Error).message}`);
  }
}

/** remapIdentity prefixes: a host[:port], or a name that starts with one (no tag, no digest). */
function checkRemapPrefix(s: string): void {
  if (isValidDomain(s)) return;
  const slash = s.indexOf('/');
  if (slash > 0 && isValidDomain(s.slice(0, slash))) {
    try {
      const ref = parseNormalizedNamed(s);
      if (ref.tag === undefined && ref.digest === undefined) return;
    } catch {
      // refused below
    }
  }
  fail(`prefix ${JSON.stringify(s)} is not valid`);
}

export function parseIdentityMatch(v: JsonValue): IdentityMatch {
  const type = typeOf(v, 'a signedIdentity');
  switch (type) {
    case 'matchExact':
    case 'matchRepoDigestOrExact':
    case 'matchRepository':
      exactMembers(v, 'a signedIdentity', ['type'], fail);
      return { type };
    case 'exactReference': {
      const m = exactMembers(v, 'a signedIdentity', ['type', 'dockerReference'], fail);
      const dockerReference = stringValue(m.get('dockerReference'), '"dockerReference"');
      const ref = policyDockerName(dockerReference, 'dockerReference');
      if (ref.tag === undefined && ref.digest === undefined) fail(`dockerReference ${dockerReference} contains neither a tag nor digest`);
      return { type, dockerReference };
    }
    case 'exactRepository': {
      const m = exactMembers(v, 'a signedIdentity', ['type', 'dockerRepository'], fail);
      const dockerRepository = stringValue(m.get('dockerRepository'), '"dockerRepository"');
      policyDockerName(dockerRepository, 'dockerRepository');
      return { type, dockerRepository };
    }
    case 'remapIdentity': {
      const m = exactMembers(v, 'a signedIdentity', ['type', 'prefix', 'signedPrefix'], fail);
      const prefix = stringValue(m.get('prefix'), '"prefix"');
      const signedPrefix = stringValue(m.get('signedPrefix'), '"signedPrefix"');
      checkRemapPrefix(prefix);
      checkRemapPrefix(signedPrefix);
      return { type, prefix, signedPrefix };
    }
    default:
      return fail(`Unknown policy reference match type ${JSON.stringify(type)}`);
  }
}

function parseSignedBy(v: JsonValue): Requirement {
  const known = ['type', 'keyType', 'keyPath', 'keyPaths', 'keyData', 'signedIdentity'];
  const m = strictMembers(v, 'a signedBy requirement', (k) => known.includes(k), fail);
  const keyType = stringValue(m.get('keyType') ?? '', '"keyType"');
  if (!KEY_TYPES.includes(keyType)) fail(`Unrecognized keyType value ${JSON.stringify(keyType)}`);
  const present = ['keyPath', 'keyPaths', 'keyData'].filter((k) => m.has(k));
  if (present.length === 0) fail('Exactly one of keyPath, keyPaths and keyData must be specified, none of them present');
  if (present.length > 1) fail('Exactly one of keyPath, keyPaths and keyData must be specified, more than one present');
  let keys: KeySource;
  if (m.has('keyPath')) {
    const p = stringValue(m.get('keyPath'), '"keyPath"');
    // An empty keyPath counts as absent in containers/image.
    if (p === '') fail('exactly one of keyPath, keyPaths and keyData must be specified');
    keys = { kind: 'keyPath', path: p };
  } else if (m.has('keyPaths')) {
    const raw = m.get('keyPaths')!;
    if (raw === null) fail('exactly one of keyPath, keyPaths and keyData must be specified');
    keys = { kind: 'keyPaths', paths: arrayValue(raw, '"keyPaths"').map((p, i) => stringValue(p, `"keyPaths"[${i}]`)) };
  } else {
    const raw = m.get('keyData')!;
    if (raw === null) fail('exactly one of keyPath, keyPaths and keyData must be specified');
    keys = { kind: 'keyData', data: base64Value(raw, '"keyData"') };
  }
  const si = m.get('signedIdentity');
  const signedIdentity: IdentityMatch = si === undefined ? { type: 'matchRepoDigestOrExact' } : parseIdentityMatch(si);
  return { type: 'signedBy', keyType, keys, signedIdentity };
}

/** A JSON array of strings that must not be empty (keyPaths, rekorPublicKeyPaths). */
function nonEmptyStrings(v: JsonValue, field: string): string[] {
  const list = arrayValue(v, `"${field}"`).map((p, i) => stringValue(p, `"${field}"[${i}]`));
  if (list.length === 0) fail(`"${field}" contains no entries`);
  return list;
}

function nonEmptyBase64s(v: JsonValue, field: string): Buffer[] {
  const list = arrayValue(v, `"${field}"`).map((d, i) => base64Value(d, `"${field}"[${i}]`));
  if (list.length === 0) fail(`"${field}" contains no entries`);
  return list;
}

/**
 * One PEM source of a sigstoreSigned requirement from the members named `prefix`Path,
 * …Paths, …Data, …Datas; undefined when none is given. As in containers/image, an empty
 * path and a null value count as absent.
 */
function pemSource(m: Map<string, JsonValue>, prefix: string, tooMany: string): PemSource | undefined {
  const found: PemSource[] = [];
  const get = (suffix: string): JsonValue | undefined => {
    const v = m.get(prefix + suffix);
    return v === null ? undefined : v;
  };
  const p = get('Path');
  if (p !== undefined && stringValue(p, `"${prefix}Path"`) !== '') found.push({ kind: 'path', path: p as string });
  const ps = get('Paths');
  if (ps !== undefined) found.push({ kind: 'paths', paths: nonEmptyStrings(ps, `${prefix}Paths`) });
  const d = get('Data');
  if (d !== undefined) found.push({ kind: 'data', data: base64Value(d, `"${prefix}Data"`) });
  const ds = get('Datas');
  if (ds !== undefined) found.push({ kind: 'datas', datas: nonEmptyBase64s(ds, `${prefix}Datas`) });
  if (found.length > 1) fail(tooMany);
  return found[0];
}

function parseFulcio(v: JsonValue): FulcioTrust {
  const m = strictMembers(v, '"fulcio"', (k) => ['caPath', 'caData', 'oidcIssuer', 'subjectEmail'].includes(k), fail);
  const caPath = m.has('caPath') ? stringValue(m.get('caPath'), '"caPath"') : '';
  const caData = m.has('caData') && m.get('caData') !== null ? base64Value(m.get('caData')!, '"caData"') : undefined;
  if (caPath !== '' && caData !== undefined) fail('caPath and caData cannot be used simultaneously');
  if (caPath === '' && caData === undefined) fail('At least one of caPath and caData must be specified');
  const oidcIssuer = m.has('oidcIssuer') ? stringValue(m.get('oidcIssuer'), '"oidcIssuer"') : '';
  if (oidcIssuer === '') fail('oidcIssuer not specified');
  const subjectEmail = m.has('subjectEmail') ? stringValue(m.get('subjectEmail'), '"subjectEmail"') : '';
  if (subjectEmail === '') fail('subjectEmail not specified');
  return { ca: caData !== undefined ? { kind: 'data', data: caData } : { kind: 'path', path: caPath }, oidcIssuer, subjectEmail };
}

/** sigstoreSigned, checked as containers/image checks it: exactly one trust root, Rekor keys where they make sense. */
function parseSigstoreSigned(v: JsonValue): Requirement {
  const known = ['type', 'keyPath', 'keyPaths', 'keyData', 'keyDatas', 'fulcio', 'pki', 'rekorPublicKeyPath', 'rekorPublicKeyPaths', 'rekorPublicKeyData', 'rekorPublicKeyDatas', 'signedIdentity'];
  const m = strictMembers(v, 'a sigstoreSigned requirement', (k) => known.includes(k), fail);
  const exactlyOne = 'exactly one of keyPath, keyPaths, keyData, keyDatas, fulcio and pki must be specified';
  const keys = pemSource(m, 'key', exactlyOne);
  const fulcio = m.has('fulcio') ? parseFulcio(m.get('fulcio')!) : undefined;
  const pki = m.has('pki');
  if ([keys !== undefined, fulcio !== undefined, pki].filter(Boolean).length !== 1) fail(exactlyOne);
  const rekorKeys = pemSource(m, 'rekorPublicKey', 'at most one of rekorPublickeyPath, rekorPublicKeyPaths, rekorPublickeyData and rekorPublicKeyDatas can be used simultaneously');
  if (fulcio !== undefined && rekorKeys === undefined) fail('At least one of rekorPublickeyPath, rekorPublicKeyPaths, rekorPublickeyData and rekorPublicKeyDatas must be specified if fulcio is used');
  if (pki && rekorKeys !== undefined) fail('rekorPublickeyPath, rekorPublicKeyPaths, rekorPublickeyData and rekorPublicKeyDatas are not supported for pki');
  const si = m.get('signedIdentity');
  if (si === undefined) fail('signedIdentity not specified');
  const signedIdentity = parseIdentityMatch(si);
  let trust: SigstoreTrust;
  if (keys !== undefined) trust = { kind: 'keys', keys, rekorKeys };
  else if (fulcio !== undefined) trust = { kind: 'fulcio', fulcio, rekorKeys: rekorKeys! };
  else trust = { kind: 'pki' };
  return { type: 'sigstoreSigned', trust, signedIdentity };
}

export function parseRequirement(v: JsonValue): Requirement {
  const type = typeOf(v, 'a policy requirement');
  switch (type) {
    case 'insecureAcceptAnything':
    case 'reject':
      exactMembers(v, `a ${type} requirement`, ['type'], fail);
      return { type };
    case 'signedBy':
      return parseSignedBy(v);
    case 'signedBaseLayer': {
      const m = exactMembers(v, 'a signedBaseLayer requirement', ['type', 'baseLayerIdentity'], fail);
      return { type, baseLayerIdentity: parseIdentityMatch(m.get('baseLayerIdentity')!) };
    }
    case 'sigstoreSigned':
      return parseSigstoreSigned(v);
    default:
      return fail(`Unknown policy requirement type ${JSON.stringify(type)}`);
  }
}

function parseRequirements(v: JsonValue, what: string): Requirement[] {
  const list = arrayValue(v, what);
  if (list.length === 0) fail('List of verification policy requirements must not be empty');
  return list.map(parseRequirement);
}

/** Parses the text of a policy file; throws PolicyFormatError naming the problem. */
export function parsePolicy(text: string): Policy {
  let doc: JsonValue;
  try {
    doc = parseStrictJson(text);
  } catch (err) {
    if (err instanceof JsonSyntaxError) fail(err.message);
    throw err;
  }
  const top = strictMembers(doc, 'the policy', (k) => k === 'default' || k === 'transports', fail);
  const def = top.get('default');
  if (def === undefined || def === null) fail('Default policy is missing');
  const transports = new Map<string, Map<string, Requirement[]>>();
  const t = top.get('transports');
  if (t !== undefined && t !== null) {
    for (const [name, section] of strictMembers(t, '"transports"', () => true, fail)) {
      const scopes = new Map<string, Requirement[]>();
      if (section === null) continue;
      for (const [scope, reqs] of strictMembers(section, `transport ${JSON.stringify(name)}`, () => true, fail)) {
        const problem = scopeProblem(name, scope);
        if (problem !== undefined) fail(`Unknown key ${JSON.stringify(scope)} (${problem})`);
        scopes.set(scope, parseRequirements(reqs, `the requirements of ${name}:${JSON.stringify(scope)}`));
      }
      transports.set(name, scopes);
    }
  }
  return { default: parseRequirements(def, '"default"'), transports };
}
