/**
 * The main job, end to end: spawn `layerpipe experimental-image-proxy` on a socketpair, open an
 * image, read its manifest and config, and stream every layer at once, verifying each digest.
 *
 *   node dist/examples/fetch-image.js [IMAGE]     (default: the bundled sample image)
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { ImageProxy } from '../clients/typescript';

async function main(): Promise<void> {
  const named = process.argv[2];
  const image = named ?? `oci:${path.join(__dirname, '..', '..', 'examples', 'sample-image')}:latest`;
  // The bundled sample is unsigned and local: accept it without a host policy (a fresh machine
  // has no /etc/containers/policy.json). An image named on the command line meets the host's policy.
  const proxy = await ImageProxy.spawn({ args: named === undefined ? ['--insecure-policy'] : [] });
  try {
    const version = await proxy.initialize();
    const id = await proxy.openImage(image);
    const { digest, bytes } = await proxy.getManifest(id);
    const config = await proxy.getFullConfig(id);
    const manifest = JSON.parse(bytes.toString('utf8')) as { layers: { digest: string; size: number; mediaType: string }[] };
    console.log(`protocol ${version}; ${image}`);
    console.log(`manifest ${digest}; ${config.os}/${config.architecture}; ${manifest.layers.length} layers`);
    const started = Date.now();
    // Every layer at once: GetRawBlob hands back a data pipe and an error pipe, no FinishPipe.
    const results = await Promise.all(manifest.layers.map(async (layer) => {
      const blob = await proxy.getRawBlob(id, layer.digest);
      const hash = createHash('sha256');
      let size = 0;
      for await (const chunk of blob.stream as AsyncIterable<Buffer>) {
        hash.update(chunk);
        size += chunk.length;
      }
      const error = await blob.error;
      if (error !== null) throw new Error(`${layer.digest}: ${error.message}`);
      const actual = `sha256:${hash.digest('hex')}`;
      if (actual !== layer.digest || size !== layer.size) throw new Error(`${layer.digest}: got ${actual}, ${size} bytes`);
      return { digest: layer.digest, size, mediaType: layer.mediaType };
    }));
    for (const r of results) console.log(`  ${r.digest}  ${String(r.size).padStart(10)}  ${r.mediaType}  verified`);
    console.log(`streamed ${results.length} layers in ${Date.now() - started} ms`);
    await proxy.closeImage(id);
  } finally {
    const code = await proxy.shutdown();
    if (code !== 0) process.exitCode = 1;
  }
}

main().catch((err: unknown) => {
  console.error(`fetch-image: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
