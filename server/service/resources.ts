/**
 * The holder behind SystemContext.resources: registry clients, connection pools and token
 * caches made on first use and closed together by their owner (a one-session proxy process,
 * or a service sharing one pool between its sessions on purpose).
 */
import { InternalError } from '../../protocol/errors';
import type { ClosableResource, SharedResources } from '../image/types';

export class ResourcePool implements SharedResources {
  private readonly entries = new Map<string, ClosableResource>();
  private closed = false;

  get<T extends ClosableResource>(key: string, create: () => T): T {
    if (this.closed) throw new InternalError(`resource ${key} asked for after its pool was closed`);
    let entry = this.entries.get(key);
    if (entry === undefined) {
      entry = create();
      this.entries.set(key, entry);
    }
    return entry as T;
  }

  /** Closes everything made so far; the pool refuses new requests from then on. */
  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.entries.values()];
    this.entries.clear();
    await Promise.allSettled(all.map((r) => r.close()));
  }
}
