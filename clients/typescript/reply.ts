/**
 * Checks on reply packets, kept apart from the process and socket handling so they can be
 * tested on their own: the JSON shape, the fd/pipeid pairing of each method's DataKind, and
 * the type of each method's value.
 */
import type { AnyMethod, DataKind, ErrorCode, LayerInfo, MethodName, RawBlobError } from '../../protocol/methods';
import { isErrorCode, ProxyProtocolError } from './errors';

/** A reply as it arrived; `error_code` is absent in replies of proxies older than wire 0.2.8. */
export interface DecodedReply {
  success: boolean;
  value: unknown;
  pipeid: number;
  errorCode: ErrorCode | '';
  error: string;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isUint(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Parses a reply packet; like the reference client it requires success, error, pipeid and value. */
export function decodeReply(method: string, data: Buffer): DecodedReply {
  let parsed: unknown;
  try {
    parsed = JSON.parse(data.toString('utf8'));
  } catch (err) {
    throw new ProxyProtocolError(`${method}: reply is not JSON: ${(err as Error).message}`);
  }
  if (!isObject(parsed)) throw new ProxyProtocolError(`${method}: reply is not a JSON object`);
  const { success, value, pipeid, error, error_code: errorCode } = parsed;
  if (typeof success !== 'boolean') throw new ProxyProtocolError(`${method}: reply lacks a boolean "success"`);
  if (typeof error !== 'string') throw new ProxyProtocolError(`${method}: reply lacks a string "error"`);
  if (!isUint(pipeid) || pipeid > 0xffffffff) throw new ProxyProtocolError(`${method}: reply lacks a uint32 "pipeid"`);
  if (!('value' in parsed)) throw new ProxyProtocolError(`${method}: reply lacks "value"`);
  if (errorCode !== undefined && errorCode !== '' && !isErrorCode(errorCode)) {
    throw new ProxyProtocolError(`${method}: reply has an unknown error_code ${JSON.stringify(errorCode)}`);
  }
  return { success, value, pipeid, error, errorCode: isErrorCode(errorCode) ? errorCode : '' };
}

const FDS_FOR: Record<Exclude<DataKind, 'noReply'>, { fds: number; pipeid: boolean; what: string }> = {
  none: { fds: 0, pipeid: false, what: 'no fd and pipeid 0' },
  pipe: { fds: 1, pipeid: true, what: 'one fd and a non-zero pipeid' },
  dataAndErrorPipes: { fds: 2, pipeid: false, what: 'two fds and pipeid 0' },
};

/** Throws unless a successful reply carries what the method's DataKind says. */
export function checkDataKind(spec: AnyMethod, pipeid: number, fdCount: number): void {
  if (spec.data === 'noReply') throw new ProxyProtocolError(`${spec.name}: the proxy replied to a request that takes no reply`);
  const want = FDS_FOR[spec.data];
  if (fdCount !== want.fds || (pipeid !== 0) !== want.pipeid) {
    throw new ProxyProtocolError(`${spec.name}: expected ${want.what}, got ${fdCount} fd(s) and pipeid ${pipeid}`);
  }
}

function isLayerInfo(v: unknown): v is LayerInfo {
  return isObject(v) && typeof v.digest === 'string' && typeof v.size === 'number' && Number.isSafeInteger(v.size) &&
    typeof v.media_type === 'string';
}

/** Blob sizes: a byte count, or -1 when the source does not know. */
const isSize = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= -1;
const isNonZeroUint = (v: unknown) => isUint(v) && v > 0;

/**
 * Successful values, by method. `null` means the value carries nothing: whatever came is
 * replaced by null.
 */
const VALUE_CHECKS: Record<Exclude<MethodName, 'Shutdown'>, ((v: unknown) => boolean) | null> = {
  Initialize: (v) => typeof v === 'string',
  OpenImage: isNonZeroUint,
  OpenImageOptional: isUint,
  CloseImage: null,
  GetManifest: (v) => typeof v === 'string',
  GetFullConfig: null,
  GetConfig: null,
  GetBlob: isSize,
  GetRawBlob: isSize,
  GetLayerInfo: (v) => Array.isArray(v) && v.every(isLayerInfo),
  GetLayerInfoPiped: null,
  FinishPipe: null,
};

/** The value of a successful reply, checked against the method's declared type. */
export function checkValue(spec: AnyMethod, value: unknown): unknown {
  if (spec.name === 'Shutdown') throw new ProxyProtocolError('Shutdown has no reply');
  const check = VALUE_CHECKS[spec.name];
  if (check === null) return null;
  if (!check(value)) throw new ProxyProtocolError(`${spec.name}: unexpected value ${JSON.stringify(value)}`);
  return value;
}

/** The contents of a GetLayerInfoPiped pipe. */
export function parseLayerInfo(data: Buffer): LayerInfo[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(data.toString('utf8'));
  } catch (err) {
    throw new ProxyProtocolError(`GetLayerInfoPiped: pipe does not hold JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(parsed) || !parsed.every(isLayerInfo)) throw new ProxyProtocolError('GetLayerInfoPiped: pipe does not hold a layer list');
  return parsed;
}

/** The contents of a GetRawBlob error pipe: nothing on success, one JSON object on failure. */
export function parseRawBlobError(data: Buffer): RawBlobError | null {
  if (data.length === 0) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(data.toString('utf8'));
  } catch (err) {
    throw new ProxyProtocolError(`GetRawBlob: error pipe does not hold JSON: ${(err as Error).message}`);
  }
  if (!isObject(parsed) || !isErrorCode(parsed.code) || typeof parsed.message !== 'string') {
    throw new ProxyProtocolError(`GetRawBlob: error pipe holds ${JSON.stringify(parsed)}, not {code, message}`);
  }
  return { code: parsed.code, message: parsed.message };
}

/** Whether a version string is one this client speaks: ^0.2.3, that is >= 0.2.3 and < 0.3.0. */
export function isSupportedVersion(version: string): boolean {
  const m = /^(\d+)\.(\d+)\.(\d+)$/.exec(version);
  return m !== null && Number(m[1]) === 0 && Number(m[2]) === 2 && Number(m[3]) >= 3;
}
