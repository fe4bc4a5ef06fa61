/**
 * One image in a real registry carrying every kind of signature layerpipe reads, for the
 * signature report tests and bench/policy-bench: pushed with `skopeo copy --sign-by` (GnuPG key
 * a, into a file:// lookaside), then given a cosign-style ".sig" attachment with two layers, a
 * P-256 key signature and a Fulcio (test CA) signature logged by a test Rekor key. Three
 * registries.d directories say where signatures are: the lookaside only, the attachments
 * only, or both. Policy requirements for each signer are ready-made.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { makeLayer, writeOciImage } from './oci-builder';
import { startRegistry, type RunningRegistry } from './registry';
import { pushSigstoreAttachment } from './registry-push';
import { createTestKeys, type TestKeys } from './signing';
import { ANNOTATIONS, EMAIL, ISSUER, keyPairs, payloadFor, publicKeyPem, rekorSet, signPayload, TestFulcio } from './sigstore-signing';

export const SIGNED_REPO = 'app/signed';
/** sigstoreSigned has no default signedIdentity: containers-policy.json(5) requires one. */
const MATCH = { type: 'matchRepoDigestOrExact' };

export interface SignedRegistryImage {
  readonly registry: RunningRegistry;
  readonly keys: TestKeys;
  /** docker://HOST/app/signed:v1 */
  readonly ref: string;
  /** HOST/app/signed:v1, the identity every signature claims. */
  readonly identity: string;
  readonly digest: string;
  readonly registriesD: { readonly lookaside: string; readonly attachments: string; readonly both: string };
  /** Policy requirements accepting each signer. */
  readonly requirement: {
    readonly signedBy: Record<string, unknown>;
    readonly sigstoreKey: Record<string, unknown>;
    readonly sigstoreFulcio: Record<string, unknown>;
  };
  /** A sigstoreSigned requirement with another P-256 key: refuses both sigstore signatures. */
  readonly otherSigstoreKey: Record<string, unknown>;
  stop(): Promise<void>;
}

function registriesD(dir: string, yaml: string): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'default.yaml'), yaml);
  return dir;
}

/** Builds everything under `tmp` (which the caller removes after stop()). */
export async function makeSignedRegistryImage(tmp: string): Promise<SignedRegistryImage> {
  const keys = createTestKeys(tmp);
  const registry = await startRegistry();
  try {
    const lookaside = path.join(tmp, 'lookaside');
    const dirs = {
      lookaside: registriesD(path.join(tmp, 'registries-lookaside.d'), `default-docker:\n  lookaside: file://${lookaside}\n  lookaside-staging: file://${lookaside}\n`),
      attachments: registriesD(path.join(tmp, 'registries-attachments.d'), 'default-docker:\n  use-sigstore-attachments: true\n'),
      both: registriesD(path.join(tmp, 'registries-both.d'), `default-docker:\n  lookaside: file://${lookaside}\n  use-sigstore-attachments: true\n`),
    };
    const layout = path.join(tmp, 'layout');
    writeOciImage(layout, { layers: [makeLayer({ 'signed.txt': 'signed by every kind of signer\n' })] }, 'v1');
    const digestFile = path.join(tmp, 'digest');
    const ref = registry.ref(`${SIGNED_REPO}:v1`);
    execFileSync('skopeo', ['--insecure-policy', '--registries.d', dirs.lookaside, 'copy', '-q', '--dest-tls-verify=false', '--digestfile', digestFile, '--sign-by', keys.a.fingerprint, `oci:${layout}:v1`, ref], { env: keys.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const digest = readFileSync(digestFile, 'utf8').trim();
    const identity = `${registry.host}/${SIGNED_REPO}:v1`;

    const payload = payloadFor(digest, identity);
    const signer = keyPairs.p256();
    const rekor = keyPairs.p256();
    const now = new Date(Math.floor(Date.now() / 1000) * 1000);
    const fulcio = new TestFulcio(now);
    const keyless = keyPairs.p256();
    const cert = fulcio.leaf(keyless.publicKey).pem;
    const keylessSignature = signPayload(keyless.privateKey, payload);
    const set = rekorSet(rekor.privateKey, { signerPem: cert, base64Signature: keylessSignature, payload, integratedTime: Math.floor(now.getTime() / 1000) + 30 });
    await pushSigstoreAttachment(registry, SIGNED_REPO, digest, [
      { payload, annotations: { [ANNOTATIONS.signature]: signPayload(signer.privateKey, payload) } },
      { payload, annotations: { [ANNOTATIONS.signature]: keylessSignature, [ANNOTATIONS.bundle]: set, [ANNOTATIONS.certificate]: cert, [ANNOTATIONS.chain]: fulcio.chainPem() } },
    ]);
    const file = (name: string, content: string): string => {
      const p = path.join(tmp, name);
      writeFileSync(p, content);
      return p;
    };
    const signerPub = file('sigstore-signer.pub', publicKeyPem(signer.publicKey));
    const otherPub = file('sigstore-other.pub', publicKeyPem(keyPairs.p256().publicKey));
    return {
      registry, keys, ref, identity, digest, registriesD: dirs,
      requirement: {
        signedBy: { type: 'signedBy', keyType: 'GPGKeys', keyPath: keys.a.binary },
        sigstoreKey: { type: 'sigstoreSigned', keyPath: signerPub, signedIdentity: MATCH },
        sigstoreFulcio: {
          type: 'sigstoreSigned',
          fulcio: { caPath: file('fulcio-root.pem', fulcio.root.pem), oidcIssuer: ISSUER, subjectEmail: EMAIL },
          rekorPublicKeyPath: file('rekor.pub', publicKeyPem(rekor.publicKey)),
          signedIdentity: MATCH,
        },
      },
      otherSigstoreKey: { type: 'sigstoreSigned', keyPath: otherPub, signedIdentity: MATCH },
      stop: async () => {
        keys.stopAgent();
        await registry.stop();
      },
    };
  } catch (err) {
    keys.stopAgent();
    await registry.stop();
    throw err;
  }
}
