/**
 * Wasm tier-up would recompile undici's HTTP parser (llhttp) with TurboFan at the first large
 * download: ~30 MiB of compiler memory for no measurable speed, the parser only walks headers
 * and skips over body bytes. So V8 runs with --liftoff-only once undici compiles the parser, which
 * it does in the connect callback of its first HTTP/1.1 connection (connect-watch.ts sets it just
 * before). The flag must stay set while the parser runs: V8 tiers up a hot function that runs
 * under default flags, even one compiled with Liftoff only.
 *
 * Set earlier, it would cost start-up time: V8 takes a code cache only under the flags it was
 * made with, Node's caches of its own modules too, so every built-in module loaded after the flag
 * is set is compiled from source. Set at the first connection, tls, net, http and streams are
 * loaded already (set at the Agent's creation, they cost ~15 ms more of a first manifest).
 */
import { setFlagsFromString } from 'node:v8';

const LIFTOFF_ONLY = '--liftoff-only';

/** What sets V8's flags back as they were: it and the two flags V8 turns off with it. */
export const UNDO_LIFTOFF_ONLY: readonly string[] = ['--no-liftoff-only', '--wasm-tier-up', '--wasm-dynamic-tiering'];

/** Sets --liftoff-only for the rest of the process (before undici compiles its parser). */
export function liftoffOnlyFromNow(): void {
  setFlagsFromString(LIFTOFF_ONLY);
}
