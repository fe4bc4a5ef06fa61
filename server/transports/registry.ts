/** Transports by name, and parsing "TRANSPORT:REFERENCE" image names. */
import { clipInput, InternalError, InvalidArgumentError, UnsupportedError } from '../../protocol/errors';
import type { ImageReference, SystemContext, Transport } from '../image/types';

/** Loads a transport's module on first use. */
type TransportLoader = () => Transport;

const loaders = new Map<string, TransportLoader>();
const loaded = new Map<string, Transport>();

export function registerTransport(name: string, load: TransportLoader): void {
  if (loaders.has(name)) throw new InternalError(`transport ${name} registered twice`);
  loaders.set(name, load);
}

export function transportNames(): string[] {
  return [...loaders.keys()].sort();
}

function transportByName(name: string): Transport | undefined {
  let transport = loaded.get(name);
  if (transport === undefined) {
    const load = loaders.get(name);
    if (load === undefined) return undefined;
    transport = load();
    if (transport.name !== name) throw new InternalError(`transport registered as ${name} calls itself ${transport.name}`);
    loaded.set(name, transport);
  }
  return transport;
}

/** The transport a "TRANSPORT:REFERENCE" name names, and the reference after the colon. */
function splitImageName(name: string): { transport: Transport; reference: string } {
  const colon = name.indexOf(':');
  if (colon <= 0) throw new InvalidArgumentError(`Invalid image name "${clipInput(name)}", expected colon-separated transport:reference`);
  const transportName = name.slice(0, colon);
  // No path, tag or registry name can hold one; refused here so no file call sees it.
  if (name.includes('\0')) throw new InvalidArgumentError(`Invalid image name "${clipInput(name.replace(/\0/g, '\\0'))}": it contains a NUL byte`);
  const transport = transportByName(transportName);
  if (transport === undefined) throw new InvalidArgumentError(`Invalid image name "${clipInput(name)}", unknown transport "${clipInput(transportName)}"`);
  return { transport, reference: name.slice(colon + 1) };
}

/** Parses an image name as containers-transports(5) writes it. */
export function parseImageName(name: string): ImageReference {
  const { transport, reference } = splitImageName(name);
  return transport.parseReference(reference);
}

/** The tags of what "TRANSPORT:REFERENCE" names (ListTags); UnsupportedError for transports without tags. */
export function listTagsByName(name: string, ctx: SystemContext, signal: AbortSignal): Promise<string[]> {
  const { transport, reference } = splitImageName(name);
  if (transport.listTags === undefined) {
    throw new UnsupportedError(`listing tags is not supported for the ${transport.name}: transport`);
  }
  return transport.listTags(reference, ctx, signal);
}
