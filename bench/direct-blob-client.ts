/**
 * A limit for memory-bench: a plain Node program fetching blobs from a registry over node:http,
 * all at once, hashing every byte and checking each digest, with no proxy and no pipe. It prints
 * its own peak RSS (VmHWM, MiB) once every blob is verified: what streaming costs a Node process
 * the ordinary way, beside the proxy's figure.
 *
 *   node dist/bench/direct-blob-client.js BLOB-URL…   (each ending in /blobs/sha256:HEX)
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';

function fetchVerified(url: string): Promise<void> {
  const digest = url.slice(url.lastIndexOf('/') + 1);
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`${url}: HTTP ${res.statusCode}`));
      const hash = createHash('sha256');
      res.on('data', (chunk: Buffer) => hash.update(chunk));
      res.on('error', reject);
      res.on('end', () => {
        const got = `sha256:${hash.digest('hex')}`;
        if (got === digest) resolve();
        else reject(new Error(`${url}: digest ${got}`));
      });
    }).on('error', reject);
  });
}

const urls = process.argv.slice(2);
if (urls.length === 0) throw new Error('usage: direct-blob-client BLOB-URL…');
Promise.all(urls.map(fetchVerified)).then(
  () => {
    const kib = Number(/^VmHWM:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]);
    process.stdout.write(`${kib / 1024}\n`);
  },
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exitCode = 1;
  },
);
