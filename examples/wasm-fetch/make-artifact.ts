/**
 * Writes a WebAssembly module as an OCI artifact into an OCI image layout:
 *
 *   node dist/examples/wasm-fetch/make-artifact.js oci:DIR[:REF] [--wasm FILE]
 *        [--config empty|wasm] [--layer-type application/wasm|application/vnd.wasm.content.layer.v1+wasm]
 *        [--write-demo FILE]
 *
 * Without --wasm it stores the built-in demo module (add, fib, answer; see demo-module.ts).
 * --write-demo FILE also writes the demo module's bytes to FILE.
 * Prints the manifest digest and the layer descriptor.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { InvalidArgumentError, LayerpipeError } from '../../protocol/errors';
import { parseOciLayoutRef, WASM_LAYER_TYPES, WASM_MEDIA_TYPES, writeWasmArtifact, type ConfigStyle, type WrittenArtifact } from './artifact';
import { demoWasmModule } from './demo-module';

const USAGE = 'usage: make-artifact oci:DIR[:REF] [--wasm FILE] [--config empty|wasm] [--layer-type TYPE] [--write-demo FILE]';

interface MakeOptions {
  target: string;
  wasmFile: string | null;
  config: ConfigStyle;
  layerType: string;
  writeDemo: string | null;
}

export function parseMakeArgs(argv: readonly string[]): MakeOptions {
  const opts: MakeOptions = { target: '', wasmFile: null, config: 'empty', layerType: WASM_MEDIA_TYPES.layer, writeDemo: null };
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new InvalidArgumentError(`${arg} needs a value\n${USAGE}`);
      return v;
    };
    switch (arg) {
      case '--wasm': opts.wasmFile = value(); break;
      case '--write-demo': opts.writeDemo = value(); break;
      case '--config': {
        const c = value();
        if (c !== 'empty' && c !== 'wasm') throw new InvalidArgumentError(`--config must be empty or wasm\n${USAGE}`);
        opts.config = c;
        break;
      }
      case '--layer-type': {
        const t = value();
        if (!WASM_LAYER_TYPES.includes(t)) throw new InvalidArgumentError(`--layer-type must be one of ${WASM_LAYER_TYPES.join(', ')}`);
        opts.layerType = t;
        break;
      }
      case '-h': case '--help': throw new InvalidArgumentError(USAGE);
      default:
        if (arg.startsWith('--')) throw new InvalidArgumentError(`unknown option ${arg}\n${USAGE}`);
        positional.push(arg);
    }
  }
  if (positional.length !== 1) throw new InvalidArgumentError(USAGE);
  opts.target = positional[0]!;
  return opts;
}

/** Builds the artifact the options describe; the module bytes come from --wasm or the demo. */
export function makeArtifact(opts: MakeOptions): WrittenArtifact {
  const { layoutDir, ref } = parseOciLayoutRef(opts.target);
  const demo = demoWasmModule();
  if (opts.writeDemo !== null) writeFileSync(opts.writeDemo, demo);
  const wasm = opts.wasmFile === null ? demo : readFileSync(opts.wasmFile);
  // "\0asm": refuse files that are not wasm binaries rather than publishing them as modules.
  if (wasm.length < 8 || wasm.readUInt32BE(0) !== 0x0061736d) {
    throw new InvalidArgumentError(`${opts.wasmFile ?? 'demo module'} is not a WebAssembly binary (no \\0asm header)`);
  }
  const title = opts.wasmFile === null ? 'demo.wasm' : opts.wasmFile.split('/').pop()!;
  return writeWasmArtifact(layoutDir, wasm, {
    ref, config: opts.config, layerMediaType: opts.layerType,
    layerAnnotations: { 'org.opencontainers.image.title': title },
  });
}

if (require.main === module) {
  try {
    const written = makeArtifact(parseMakeArgs(process.argv.slice(2)));
    process.stdout.write(
      `wrote oci:${written.layoutDir}:${written.ref}\n` +
      `  manifest ${written.manifestDigest}\n` +
      `  config   ${written.config.mediaType} ${written.config.digest}\n` +
      `  layer    ${written.layer.mediaType} ${written.layer.digest} (${written.layer.size} bytes)\n`,
    );
  } catch (err) {
    const code = err instanceof LayerpipeError ? ` [${err.code}]` : '';
    process.stderr.write(`make-artifact: ${(err as Error).message}${code}\n`);
    process.exitCode = 1;
  }
}
