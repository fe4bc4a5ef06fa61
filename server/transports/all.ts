/**
 * Every transport layerpipe serves: one registration line each. A transport's module loads the
 * first time a reference names it, so a proxy serving oci: never pays for undici or tar-stream.
 */
import { registerTransport } from './registry';

/* eslint-disable @typescript-eslint/no-require-imports */
registerTransport('oci', () => (require('./oci') as typeof import('./oci')).ociTransport);
registerTransport('dir', () => (require('./dir') as typeof import('./dir')).dirTransport);
registerTransport('oci-archive', () => (require('./oci-archive') as typeof import('./oci-archive')).ociArchiveTransport);
registerTransport('docker-archive', () => (require('./docker-archive') as typeof import('./docker-archive')).dockerArchiveTransport);
registerTransport('docker', () => (require('./docker') as typeof import('./docker')).dockerTransport);

export { listTagsByName, parseImageName, transportNames } from './registry';
