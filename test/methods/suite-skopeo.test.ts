/**
 * The method suite (test/harness/method-suite.ts) over the skopeo 0.2.8 wire: the real
 * bin/layerpipe on a SOCK_SEQPACKET socketpair, driven by the TypeScript client.
 */
import { ImageProxy } from '../../clients/typescript';
import { defineMethodSuite, type WireClient, type WireUnderTest } from '../harness/method-suite';

function skopeoClient(proxy: ImageProxy): WireClient {
  return {
    openImage: (ref) => proxy.openImage(ref),
    openImageOptional: (ref) => proxy.openImageOptional(ref),
    closeImage: (id) => proxy.closeImage(id),
    getManifest: (id) => proxy.getManifest(id),
    getFullConfig: (id) => proxy.getFullConfig(id),
    getConfig: (id) => proxy.getConfig(id),
    getLayerInfo: (id) => proxy.getLayerInfo(id),
    getBlob: (id, digest, size) => proxy.getBlob(id, digest, size),
    getRawBlob: (id, digest) => proxy.getRawBlob(id, digest),
    disconnect: () => proxy.close(),
    close: async () => {
      await proxy.shutdown();
    },
  };
}

const skopeoWire: WireUnderTest = {
  name: 'skopeo 0.2.8',
  async connect(extraArgs = []) {
    const proxy = await ImageProxy.spawn({ args: extraArgs });
    await proxy.initialize();
    return skopeoClient(proxy);
  },
};

defineMethodSuite(skopeoWire);
