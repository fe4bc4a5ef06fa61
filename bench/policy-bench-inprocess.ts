/**
 * What signature verification adds to OpenImage: one image in a loopback registry, signed with
 * simple signing (GnuPG, file:// lookaside) and with sigstore (a P-256 key, a key with a Rekor
 * SET, a Fulcio-like certificate), opened in-process N times under each policy; prints the
 * median and 90th-percentile milliseconds per OpenImage (manifest read, signatures fetched and
 * verified, image resolved) next to insecureAcceptAnything's. Run by hand:
 *
 *   npx tsc -p tsconfig.json && node dist/bench/policy-bench-inprocess.js [--rounds 30]
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openImageByName } from '../server/image/open';
import { parsePolicy } from '../server/policy/parse';
import { closeTestContext, neverAborted, testContext } from '../test/harness/context';
import { makeLayer } from '../test/harness/oci-builder';
import { startRegistry } from '../test/harness/registry';
import { pushImage, rawManifest } from '../test/harness/registry-images';
import { pushSigstoreAttachment } from '../test/harness/registry-push';
import { INSTALL_HINT, missingRegistryTools } from '../test/harness/registry-tools';
import { createTestKeys, standaloneSign } from '../test/harness/signing';
import { ANNOTATIONS, EMAIL, ISSUER, keyPairs, payloadFor, publicKeyPem, rekorSet, signPayload, TestFulcio } from '../test/harness/sigstore-signing';

function roundsFrom(argv: readonly string[]): number {
  if (argv.length === 0) return 30;
  const n = Number(argv[1]);
  if (argv[0] !== '--rounds' || !Number.isInteger(n) || n <= 0 || argv.length !== 2) throw new Error('usage: policy-bench [--rounds N]');
  return n;
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

async function main(): Promise<void> {
  const missing = missingRegistryTools();
  if (missing.length > 0) throw new Error(`missing ${missing.join(', ')}: ${INSTALL_HINT}`);
  const rounds = roundsFrom(process.argv.slice(2));
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-policy-bench-'));
  const registry = await startRegistry();
  const keys = createTestKeys(tmp);
  try {
    const pushed = await pushImage(registry, 'bench/app:v1', { layers: [makeLayer({ 'a.txt': 'bench\n' })] });
    const identity = `${registry.host}/bench/app:v1`;
    const lookaside = path.join(tmp, 'lookaside');
    const sigDir = path.join(lookaside, `bench/app@${pushed.manifestDigest.replace(':', '=')}`);
    mkdirSync(sigDir, { recursive: true });
    const manifestFile = path.join(tmp, 'manifest.json');
    writeFileSync(manifestFile, await rawManifest(registry, 'bench/app:v1'));
    standaloneSign(keys, manifestFile, identity, keys.a.fingerprint, path.join(sigDir, 'signature-1'));

    const key = keyPairs.p256();
    const rekor = keyPairs.p256();
    const keyless = keyPairs.p256();
    const now = new Date(Math.floor(Date.now() / 1000) * 1000);
    const fulcio = new TestFulcio(now);
    const payload = payloadFor(pushed.manifestDigest, identity);
    const keySig = signPayload(key.privateKey, payload);
    const keySet = rekorSet(rekor.privateKey, { signerPem: publicKeyPem(key.publicKey), base64Signature: keySig, payload, integratedTime: now.getTime() / 1000 });
    const cert = fulcio.leaf(keyless.publicKey).pem;
    const keylessSig = signPayload(keyless.privateKey, payload);
    const certSet = rekorSet(rekor.privateKey, { signerPem: cert, base64Signature: keylessSig, payload, integratedTime: now.getTime() / 1000 + 10 });
    await pushSigstoreAttachment(registry, 'bench/app', pushed.manifestDigest, [
      { payload, annotations: { [ANNOTATIONS.signature]: keySig, [ANNOTATIONS.bundle]: keySet } },
      { payload, annotations: { [ANNOTATIONS.signature]: keylessSig, [ANNOTATIONS.bundle]: certSet, [ANNOTATIONS.certificate]: cert, [ANNOTATIONS.chain]: fulcio.chainPem() } },
    ]);
    const registriesD = path.join(tmp, 'registries.d');
    mkdirSync(registriesD);
    writeFileSync(path.join(registriesD, 'd.yaml'), `default-docker:\n  lookaside: file://${lookaside}\n  use-sigstore-attachments: true\n`);

    const b64 = (s: string): string => Buffer.from(s).toString('base64');
    const sigstore = (extra: Record<string, unknown>) => ({ type: 'sigstoreSigned', signedIdentity: { type: 'matchRepoDigestOrExact' }, ...extra });
    const policies: Record<string, unknown> = {
      insecureAcceptAnything: { type: 'insecureAcceptAnything' },
      'signedBy (GPG, lookaside)': { type: 'signedBy', keyType: 'GPGKeys', keyPath: keys.a.binary },
      'sigstoreSigned key': sigstore({ keyData: b64(publicKeyPem(key.publicKey)) }),
      'sigstoreSigned key + Rekor': sigstore({ keyData: b64(publicKeyPem(key.publicKey)), rekorPublicKeyData: b64(publicKeyPem(rekor.publicKey)) }),
      'sigstoreSigned Fulcio + Rekor': sigstore({ fulcio: { caData: b64(fulcio.root.pem), oidcIssuer: ISSUER, subjectEmail: EMAIL }, rekorPublicKeyData: b64(publicKeyPem(rekor.publicKey)) }),
    };
    console.log(`OpenImage of ${identity}, ${rounds} rounds each (in-process, loopback registry, warm connections)`);
    for (const [name, requirement] of Object.entries(policies)) {
      const ctx = testContext({ policy: parsePolicy(JSON.stringify({ default: [requirement] })), registry: { registriesDir: registriesD, tlsVerify: false } });
      const times: number[] = [];
      try {
        for (let i = 0; i <= rounds; i++) {
          const started = process.hrtime.bigint();
          const image = await openImageByName(pushed.ref, ctx, neverAborted());
          await image.close();
          // The first round opens connections and loads modules: not counted.
          if (i > 0) times.push(Number(process.hrtime.bigint() - started) / 1e6);
        }
      } finally {
        await closeTestContext(ctx);
      }
      times.sort((a, b) => a - b);
      console.log(`${name.padEnd(32)} median ${quantile(times, 0.5).toFixed(2)} ms   p90 ${quantile(times, 0.9).toFixed(2)} ms`);
    }
  } finally {
    keys.stopAgent();
    await registry.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
