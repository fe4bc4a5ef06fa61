/** Transports by name, and parsing "TRANSPORT:REFERENCE" image names. */
import { InvalidArgumentError } from '../errors';
import type { ImageReference, Transport } from '../image/types';

const transports = new Map<string, Transport>();

export function registerTransport(transport: Transport): void {
  if (transports.has(transport.name)) throw new Error(`transport ${transport.name} registered twice`);
  transports.set(transport.name, transport);
}

export function transportNames(): string[] {
  return [...transports.keys()].sort();
}

/** Parses an image name as containers-transports(5) writes it. */
export function parseImageName(name: string): ImageReference {
  const colon = name.indexOf(':');
  if (colon <= 0) throw new InvalidArgumentError(`Invalid image name "${name}", expected colon-separated transport:reference`);
  const transportName = name.slice(0, colon);
  const transport = transports.get(transportName);
  if (transport === undefined) throw new InvalidArgumentError(`Invalid image name "${name}", unknown transport "${transportName}"`);
  return transport.parseReference(name.slice(colon + 1));
}
