/**
 * Errors of the local transports that say which transport met them and what it expected to
 * find, so `oci:/nonexistent` reads "oci: /nonexistent: no such directory (expected an OCI
 * layout with index.json)" for a proxy client and at the command line alike.
 */
import { LayerpipeError, systemCode } from '../../../protocol/errors';

export interface LocalExpectation {
  readonly transport: string;
  /** What a reference of this transport must name. */
  readonly expected: string;
}

export const EXPECTED: Readonly<Record<'oci' | 'dir' | 'oci-archive' | 'docker-archive', LocalExpectation>> = {
  oci: { transport: 'oci', expected: 'an OCI layout with index.json' },
  dir: { transport: 'dir', expected: 'a directory with manifest.json, as skopeo copy writes it' },
  'oci-archive': { transport: 'oci-archive', expected: 'a tar archive of an OCI layout' },
  'docker-archive': { transport: 'docker-archive', expected: 'a tar archive as docker save writes it' },
};

/** The error again, of the same class, its message naming the transport and what it expected. */
export function withExpectation(err: unknown, what: LocalExpectation): unknown {
  if (!(err instanceof LayerpipeError) || err.message.startsWith(`${what.transport}: `)) return err;
  const Ctor = err.constructor as new (message: string, options?: { cause?: unknown }) => LayerpipeError;
  return new Ctor(`${what.transport}: ${err.message} (expected ${what.expected})`, { cause: err.cause ?? err });
}

/** Whether a failure is the file system's (a missing or unreadable file), not the content's. */
export function isFileSystemFailure(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 4; depth++) {
    if (!(e instanceof LayerpipeError) && systemCode(e) !== undefined) return true;
    e = e.cause;
  }
  return false;
}

/**
 * Runs an opening step (opening the directory or archive, reading index.json or manifest.json);
 * a file-system failure it throws gets the expectation. Refusals of what was found (a FIFO, a
 * hostile entry) and missing refs keep their own words.
 */
export async function openingAs<T>(what: LocalExpectation, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    throw isFileSystemFailure(err) ? withExpectation(err, what) : err;
  }
}
