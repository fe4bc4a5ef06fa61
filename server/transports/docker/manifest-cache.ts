/**
 * Manifests read by digest, kept by the RegistryPool for everyone who shares it (the sessions
 * of a long-running service): a digest names its bytes forever, so a second client asking for
 * a manifest the service has already read gets it with no request, no token, no round trip.
 *
 * Only bytes already verified against their digest are stored, and each entry belongs to the
 * registry client (endpoint and identity) and repository it was read through, so no client
 * learns of a manifest through another's access. Least recently used entries go first once the
 * total passes the byte bound.
 */
import type { RawManifest } from '../../image/types';

/** Total manifest bytes kept (a manifest is at most 4 MiB; most are a few KiB). */
export const DEFAULT_MANIFEST_CACHE_BYTES = 16 * 1024 * 1024;

export class ManifestCache {
  /** Map order is use order: the first entry is the least recently used. */
  private readonly entries = new Map<string, RawManifest>();
  private totalBytes = 0;
  /** Clients are objects, not values: each gets a number for the keys. */
  private readonly clientIds = new WeakMap<object, number>();
  private nextClientId = 0;

  constructor(private readonly maxBytes: number = DEFAULT_MANIFEST_CACHE_BYTES) {}

  get(client: object, repository: string, digest: string): RawManifest | undefined {
    const key = this.key(client, repository, digest);
    const entry = this.entries.get(key);
    if (entry !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, entry);
    }
    return entry;
  }

  /** Stores a manifest whose bytes the caller has verified against `digest`. */
  putVerified(client: object, repository: string, digest: string, manifest: RawManifest): void {
    if (manifest.bytes.length > this.maxBytes) return;
    const key = this.key(client, repository, digest);
    const old = this.entries.get(key);
    if (old !== undefined) {
      this.entries.delete(key);
      this.totalBytes -= old.bytes.length;
    }
    this.entries.set(key, manifest);
    this.totalBytes += manifest.bytes.length;
    for (const [oldestKey, oldest] of this.entries) {
      if (this.totalBytes <= this.maxBytes) break;
      this.entries.delete(oldestKey);
      this.totalBytes -= oldest.bytes.length;
    }
  }

  get bytes(): number {
    return this.totalBytes;
  }

  get count(): number {
    return this.entries.size;
  }

  clear(): void {
    this.entries.clear();
    this.totalBytes = 0;
  }

  private key(client: object, repository: string, digest: string): string {
    let id = this.clientIds.get(client);
    if (id === undefined) {
      id = this.nextClientId++;
      this.clientIds.set(client, id);
    }
    return `${id}\0${repository}\0${digest}`;
  }
}
