/**
 * What a signature policy costs at OpenImage (issue 10, item 7): one image in a loopback
 * registry, signed with `skopeo copy --sign-by` (lookaside) and with a sigstore ".sig"
 * attachment (a P-256 key signature and a test Fulcio one), opened through
 * `layerpipe experimental-image-proxy` under insecureAcceptAnything, signedBy,
 * sigstoreSigned with a key and sigstoreSigned with Fulcio + Rekor. One proxy per policy,
 * all alive together; the rounds take the policies in turn, so that drift on a busy machine
 * hits each alike. Prints the median and 90th percentile of OpenImage, and the verification
 * cost: the median's difference to insecureAcceptAnything. Run by hand:
 *
 *   npx tsc -p tsconfig.json && node dist/bench/policy-bench.js [--rounds 30]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ImageProxy } from '../clients/typescript';
import { INSTALL_HINT, missingRegistryTools } from '../test/harness/registry-tools';
import { makeSignedRegistryImage, type SignedRegistryImage } from '../test/harness/signed-registry-image';

interface Case {
  readonly label: string;
  readonly requirement: (fx: SignedRegistryImage) => Record<string, unknown>;
  /** Where this policy's signatures are: each reads only its own kind, as a host configured for it would. */
  readonly registriesD: (fx: SignedRegistryImage) => string;
}

const CASES: readonly Case[] = [
  { label: 'insecureAcceptAnything', requirement: () => ({ type: 'insecureAcceptAnything' }), registriesD: (fx) => fx.registriesD.both },
  { label: 'signedBy (GnuPG, file:// lookaside)', requirement: (fx) => fx.requirement.signedBy, registriesD: (fx) => fx.registriesD.lookaside },
  { label: 'sigstoreSigned (P-256 key, .sig)', requirement: (fx) => fx.requirement.sigstoreKey, registriesD: (fx) => fx.registriesD.attachments },
  { label: 'sigstoreSigned (Fulcio + Rekor, .sig)', requirement: (fx) => fx.requirement.sigstoreFulcio, registriesD: (fx) => fx.registriesD.attachments },
];

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} takes a positive integer`);
  return v;
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** One OpenImage (then CloseImage, untimed), in milliseconds. */
async function timeOpen(proxy: ImageProxy, ref: string): Promise<number> {
  const started = process.hrtime.bigint();
  const id = await proxy.openImage(ref);
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  await proxy.closeImage(id);
  return ms;
}

async function main(): Promise<void> {
  const missing = missingRegistryTools();
  if (missing.length > 0) throw new Error(`missing ${missing.join(', ')}: ${INSTALL_HINT}`);
  const rounds = option('rounds', 30);
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'layerpipe-policy-bench-'));
  const fx = await makeSignedRegistryImage(tmp);
  const proxies: ImageProxy[] = [];
  try {
    for (const [i, c] of CASES.entries()) {
      const policy = path.join(tmp, `policy-${i}.json`);
      writeFileSync(policy, JSON.stringify({ default: [c.requirement(fx)] }));
      const proxy = await ImageProxy.spawn({ args: ['--policy', policy, '--registries.d', c.registriesD(fx), '--tls-verify=false'] });
      await proxy.initialize();
      proxies.push(proxy);
    }
    // The first opens set up connections and caches; they are not what a policy costs.
    const first: number[] = [];
    for (const proxy of proxies) first.push(await timeOpen(proxy, fx.ref));
    for (const proxy of proxies) await timeOpen(proxy, fx.ref);
    const samples: number[][] = CASES.map(() => []);
    for (let r = 0; r < rounds; r++) {
      for (let k = 0; k < proxies.length; k++) {
        const i = (r + k) % proxies.length;
        samples[i]!.push(await timeOpen(proxies[i]!, fx.ref));
      }
    }
    const medians = samples.map((s) => quantile([...s].sort((a, b) => a - b), 0.5));
    const rows = CASES.map((c, i) => {
      const sorted = [...samples[i]!].sort((a, b) => a - b);
      const cost = i === 0 ? '' : `+${(medians[i]! - medians[0]!).toFixed(2)}`;
      return [c.label, first[i]!.toFixed(1), medians[i]!.toFixed(2), quantile(sorted, 0.9).toFixed(2), cost];
    });
    const header = ['policy', 'first ms', 'median ms', 'p90 ms', 'cost ms'];
    const widths = header.map((h, j) => Math.max(h.length, ...rows.map((row) => row[j]!.length)));
    const line = (cells: readonly string[]): string => cells.map((cell, j) => (j === 0 ? cell.padEnd(widths[j]!) : cell.padStart(widths[j]!))).join('  ');
    console.log(`OpenImage of ${fx.ref} (${fx.digest.slice(0, 19)}…), ${rounds} rounds per policy, Node ${process.version}, ${os.cpus().length} CPUs`);
    console.log(line(header));
    for (const row of rows) console.log(line(row));
  } finally {
    for (const proxy of proxies) await proxy.shutdown();
    await fx.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
