/**
 * The registry signature API extension in front of the real docker-registry (which lacks it):
 * a fault proxy that adds "X-Registry-Supports-Signatures: 1" to /v2/ answers, keeps the
 * signatures PUT to /extensions/v2/REPO/signatures/DIGEST (as `skopeo copy --sign-by` stores
 * them there) and lists them on GET, unless the test set another answer. The endpoint is as
 * protected as the image: a request is answered only when the registry itself accepts its
 * Authorization for HEAD of that manifest; otherwise it gets the registry's own 401.
 */
import http from 'node:http';
import { match, startFaultProxy, type FaultProxy, type SeenRequest } from './fault-proxy';
import type { RunningRegistry } from './registry';

const EXTENSION_PATH = /^\/extensions\/v2\/(.+)\/signatures\/([^/]+)$/;

/** A status instead of the list; with `location`, a redirect there. */
export interface ExtensionStatus {
  readonly status: number;
  readonly location?: string;
}

export interface SignatureExtensionServer {
  /** host:port to name instead of the registry's. */
  readonly host: string;
  readonly proxy: FaultProxy;
  /** What GET …/signatures/DIGEST of REPO answers instead of the stored list: a body (200), or a status. */
  set(repository: string, digest: string, answer: string | Buffer | ExtensionStatus): void;
  /** The signature entries stored by PUT for REPO@DIGEST. */
  stored(repository: string, digest: string): readonly Record<string, unknown>[];
  /** The extension requests seen, in order. */
  extensionRequests(): SeenRequest[];
  close(): Promise<void>;
}

/** A signature list as OpenShift's registry writes it. */
export function signatureListBody(digest: string, blobs: readonly Buffer[], entry: (e: Record<string, unknown>) => Record<string, unknown> = (e) => e): string {
  return JSON.stringify({
    signatures: blobs.map((blob, i) => entry({ schemaVersion: 2, name: `${digest}@sig${i + 1}`, type: 'atomic', content: blob.toString('base64') })),
  });
}

/** Asks the registry whether `authorization` may read this manifest: its status and challenge. */
function registryAccepts(registry: RunningRegistry, repository: string, digest: string, authorization: string | undefined): Promise<{ status: number; challenge: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port: registry.port, method: 'HEAD', path: `/v2/${repository}/manifests/${digest}`, agent: false,
      headers: { accept: 'application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json', ...(authorization === undefined ? {} : { authorization }) },
    }, (res) => {
      res.resume();
      const challenge = res.headers['www-authenticate'];
      resolve({ status: res.statusCode ?? 0, challenge: Array.isArray(challenge) ? challenge[0] : challenge });
    });
    req.on('error', reject);
    req.end();
  });
}

/** Starts the extension in front of a plain-HTTP `registry`. */
export async function startSignatureExtension(registry: RunningRegistry): Promise<SignatureExtensionServer> {
  const proxy = await startFaultProxy({ host: '127.0.0.1', port: registry.port });
  const answers = new Map<string, string | Buffer | ExtensionStatus>();
  const stored = new Map<string, Record<string, unknown>[]>();
  proxy.addRule({ match: (r) => r.path === '/v2/' || r.path === '/v2', action: { kind: 'add-headers', headers: { 'X-Registry-Supports-Signatures': '1' } }, times: Infinity });
  proxy.addRule({
    match: match.path(EXTENSION_PATH),
    times: Infinity,
    action: {
      kind: 'serve',
      handler: (req, res) => {
        const m = EXTENSION_PATH.exec((req.url ?? '').split('?')[0]!)!;
        const [repository, digest] = [m[1]!, decodeURIComponent(m[2]!)];
        const key = `${repository}@${digest}`;
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        const received = new Promise<void>((resolve) => req.on('end', resolve));
        received.then(() => registryAccepts(registry, repository, digest, req.headers.authorization)).then(({ status, challenge }) => {
          if (status === 401) {
            res.writeHead(401, { 'content-type': 'application/json', ...(challenge === undefined ? {} : { 'www-authenticate': challenge }) });
            res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
            return;
          }
          if (req.method === 'PUT') {
            stored.set(key, [...(stored.get(key) ?? []), JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>]);
            res.writeHead(201).end();
            return;
          }
          const answer = answers.get(key) ?? JSON.stringify({ signatures: stored.get(key) ?? [] });
          if (typeof answer === 'object' && !Buffer.isBuffer(answer)) {
            const code = answer.status;
            res.writeHead(code, { 'content-type': 'application/json', ...(answer.location === undefined ? {} : { location: answer.location }) });
            res.end(JSON.stringify({ errors: [{ code: 'UNKNOWN', message: `extension answered ${code}` }] }));
            return;
          }
          const body = Buffer.isBuffer(answer) ? answer : Buffer.from(answer, 'utf8');
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(body.length) });
          res.end(body);
        }, (err: Error) => {
          res.writeHead(502).end(err.message);
        });
      },
    },
  });
  return {
    host: proxy.host,
    proxy,
    set: (repository, digest, answer) => {
      answers.set(`${repository}@${digest}`, answer);
    },
    stored: (repository, digest) => stored.get(`${repository}@${digest}`) ?? [],
    extensionRequests: () => proxy.seen(match.path(EXTENSION_PATH)),
    close: () => proxy.close(),
  };
}
