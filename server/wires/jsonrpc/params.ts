/**
 * Checking a 1.0 request's params against PARAMS_1: an object (params by name), no member the
 * method does not know, each member of its kind. A null optional member counts as absent, so
 * clients whose "None" serialises as null are served. Failures are InvalidArgumentError
 * (-32602) naming the method, the member and what was expected.
 */
import { clipInput, InvalidArgumentError } from '../../../protocol/errors';
import { PARAMS_1, type Method1, type ParamKind, type ParamsOf1, type ParamSpec } from '../../../protocol/jsonrpc';

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'number' && !Number.isInteger(value)) return 'a fraction';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const EXPECTED: Readonly<Record<ParamKind, string>> = {
  string: 'a string',
  uint: 'a non-negative integer',
  int: 'an integer',
  boolean: 'a boolean',
  platform: 'an object {os, architecture, variant?} of strings',
  payloads: 'an array of payload names',
};

function fits(kind: ParamKind, value: unknown): boolean {
  switch (kind) {
    case 'string': return typeof value === 'string';
    case 'uint': return Number.isSafeInteger(value) && (value as number) >= 0;
    case 'int': return Number.isSafeInteger(value);
    case 'boolean': return typeof value === 'boolean';
    case 'platform': return isPlainObject(value)
      && typeof value.os === 'string' && typeof value.architecture === 'string'
      && (value.variant === undefined || value.variant === null || typeof value.variant === 'string')
      && Object.keys(value).every((k) => k === 'os' || k === 'architecture' || k === 'variant');
    // Unknown names are allowed (and never chosen): a client may prefer a payload a newer server has.
    case 'payloads': return Array.isArray(value) && value.every((v) => typeof v === 'string');
  }
}

function parseSpec(spec: ParamSpec): { kind: ParamKind; optional: boolean } {
  return spec.endsWith('?') ? { kind: spec.slice(0, -1) as ParamKind, optional: true } : { kind: spec as ParamKind, optional: false };
}

function describe(specs: Readonly<Record<string, ParamSpec>>): string {
  const names = Object.entries(specs).map(([name, spec]) => (spec.endsWith('?') ? `${name}?` : name));
  return names.length === 0 ? 'no members' : names.join(', ');
}

/** The params of `method`, checked; a copy without null optional members. */
export function checkParams<M extends Method1>(method: M, params: unknown): ParamsOf1<M> {
  const specs = PARAMS_1[method];
  if (params !== undefined && !isPlainObject(params)) {
    throw new InvalidArgumentError(`${method}: params must be an object (by name), not ${kindOf(params)}; expected ${describe(specs)}`);
  }
  const given = params ?? {};
  for (const name of Object.keys(given)) {
    if (!Object.hasOwn(specs, name)) throw new InvalidArgumentError(`${method}: unknown member "${clipInput(name)}" in params; expected ${describe(specs)}`);
  }
  const checked: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(specs)) {
    const { kind, optional } = parseSpec(spec);
    const value = given[name];
    if (value === undefined || (value === null && optional)) {
      if (!optional) throw new InvalidArgumentError(`${method}: missing member "${name}" (${EXPECTED[kind]})`);
      continue;
    }
    if (!fits(kind, value)) throw new InvalidArgumentError(`${method}: "${name}" must be ${EXPECTED[kind]}, not ${kindOf(value)}`);
    checked[name] = kind === 'platform' ? withoutNullVariant(value as Record<string, unknown>) : value;
  }
  return checked as ParamsOf1<M>;
}

function withoutNullVariant(platform: Record<string, unknown>): Record<string, unknown> {
  const { variant, ...rest } = platform;
  return variant === null || variant === undefined ? rest : { ...rest, variant };
}
