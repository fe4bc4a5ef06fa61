/**
 * The least a Node program does for a first manifest, the floor under layerpipe's figure in
 * startup-bench (run there as a child, like the proxies): the HTTPS probe a `--tls-verify=false`
 * client makes first (containers/image does, then falls back to HTTP; no CA store, as layerpipe
 * builds none without verification), `GET /v2/`, the manifest's GET, and its SHA-256. Node's own
 * modules only: node:tls, node:http, node:crypto, loaded when used.
 *
 *   node dist/bench/node-manifest-floor.js HOST PORT REPOSITORY TAG
 */
import http from 'node:http';
import tls from 'node:tls';

const ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json';

function get(agent: http.Agent, host: string, port: number, urlPath: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    http.get({ host, port, path: urlPath, agent, headers: { accept: ACCEPT } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => (res.statusCode === 200 ? resolve(Buffer.concat(chunks)) : reject(new Error(`${urlPath}: HTTP ${res.statusCode}`))));
    }).on('error', reject);
  });
}

async function main(): Promise<void> {
  const [host, port, repository, tag] = process.argv.slice(2);
  if (host === undefined || repository === undefined || tag === undefined || !(Number(port) > 0)) throw new Error('usage: node-manifest-floor HOST PORT REPOSITORY TAG');
  await new Promise<void>((resolve) => {
    const probe = tls.connect({ host, port: Number(port), rejectUnauthorized: false, ca: [] });
    probe.once('secureConnect', () => probe.destroy());
    probe.once('error', () => resolve());
    probe.once('close', () => resolve());
  });
  const agent = new http.Agent({ keepAlive: true });
  await get(agent, host, Number(port), '/v2/');
  const manifest = await get(agent, host, Number(port), `/v2/${repository}/manifests/${tag}`);
  const { createHash } = await import('node:crypto');
  process.stdout.write(`sha256:${createHash('sha256').update(manifest).digest('hex')}\n`);
  agent.destroy();
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exitCode = 1;
});
