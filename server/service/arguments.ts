/** Checking a request's arguments against the method table in protocol/. */
import { MAX_JSON_INTEGER, UNKNOWN_SIZE, type ArgKind, type ArgsOf, type MethodSpec } from '../../protocol/methods';
import { InvalidArgumentError } from '../../protocol/errors';

/** Go-style names of JSON value types, as skopeo's messages print them. */
function jsonTypeName(v: unknown): string {
  if (v === null) return '<nil>';
  if (Array.isArray(v)) return '[]interface {}';
  switch (typeof v) {
    case 'string': return 'string';
    case 'number': return 'float64';
    case 'boolean': return 'bool';
    default: return 'map[string]interface {}';
  }
}

function checkArg(kind: ArgKind, name: string, value: unknown): string | number {
  if (kind === 'string') {
    if (typeof value !== 'string') throw new InvalidArgumentError(`expecting string ${name}, not ${jsonTypeName(value)}`);
    return value;
  }
  if (typeof value !== 'number') throw new InvalidArgumentError(`expecting integer ${name}, not ${jsonTypeName(value)}`);
  // A blob size of -1 means "unknown" (skopeo takes it too): only the digest is then checked.
  if (name === 'size' && value === UNKNOWN_SIZE) return value;
  if (!Number.isInteger(value) || value < 0) throw new InvalidArgumentError(`expecting non-negative integer ${name}, not ${value}`);
  if (value > MAX_JSON_INTEGER) throw new InvalidArgumentError(`out of range integer for ${name}: ${value}`);
  return value;
}

/** The typed arguments, or InvalidArgumentError naming what was expected. */
export function checkArguments<M extends MethodSpec>(method: M, args: readonly unknown[]): ArgsOf<M> {
  if (args.length !== method.args.length) {
    const expected = method.args.length === 0 ? 'zero arguments' : `(${(method.argNames as readonly string[]).join(', ')})`;
    throw new InvalidArgumentError(`invalid request: found ${args.length} args, expecting ${expected}`);
  }
  return method.args.map((kind, i) => checkArg(kind, (method.argNames as readonly string[])[i]!, args[i])) as ArgsOf<M>;
}
