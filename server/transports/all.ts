/** Every transport layerpipe serves: one registration line each. */
import { dirTransport } from './dir';
import { ociTransport } from './oci';
import { registerTransport } from './registry';

registerTransport(ociTransport);
registerTransport(dirTransport);

export { parseImageName, transportNames } from './registry';
