/** Every transport layerpipe serves: one registration line each. */
import { dirTransport } from './dir';
import { dockerArchiveTransport } from './docker-archive';
import { dockerTransport } from './docker';
import { ociTransport } from './oci';
import { ociArchiveTransport } from './oci-archive';
import { registerTransport } from './registry';

registerTransport(ociTransport);
registerTransport(dirTransport);
registerTransport(ociArchiveTransport);
registerTransport(dockerArchiveTransport);
registerTransport(dockerTransport);

export { parseImageName, transportNames } from './registry';
