/**
 * Connections that nobody waits for any more are not finished. undici goes on connecting (TCP,
 * then the TLS handshake) after the request that asked for the connection was aborted, until its
 * connect timeout (10 s) — a cancelled OpenImage against a registry that stalls in the handshake
 * would leave a socket behind that long. One watch per Agent: its connector records the sockets
 * still connecting per origin, requests through it are counted per origin, and when an aborted
 * request leaves an origin with no request, the sockets still connecting to it are destroyed.
 */
import type { Socket } from 'node:net';
import type buildConnector from 'undici/types/connector';
import { CancelledError } from '../../../protocol/errors';
import { liftoffOnlyFromNow } from './llhttp-tiers';

type Connector = buildConnector.connector;
type ConnectorOptions = buildConnector.BuildOptions;

export class ConnectWatch {
  private readonly connecting = new Map<string, Set<Socket>>();
  private readonly waiting = new Map<string, number>();

  /** undici's own connector for `options`, with each socket recorded until its connect ends. */
  connector(options: ConnectorOptions): Connector {
    const build = require('undici/lib/core/connect') as typeof buildConnector;
    const connect = build(options);
    return (opts, callback) => {
      const origin = `${opts.protocol}//${opts.host ?? opts.hostname}`;
      let sockets = this.connecting.get(origin);
      if (sockets === undefined) {
        sockets = new Set();
        this.connecting.set(origin, sockets);
      }
      const set = sockets;
      // undici's connector returns the socket it is connecting (its types say void).
      const connectReturningSocket = connect as unknown as (o: buildConnector.Options, cb: buildConnector.Callback) => Socket;
      const socket = connectReturningSocket(opts, (...args) => {
        this.forget(origin, set, socket);
        // undici compiles its HTTP parser in the callback of its first connection (llhttp-tiers.ts).
        if (args[0] === null) liftoffOnlyFromNow();
        callback(...args);
      });
      set.add(socket);
      return socket;
    };
  }

  /** Runs one request to `origin`; if `signal` aborts it, connections no other request waits for stop. */
  async track<T>(origin: string, signal: AbortSignal | undefined, run: () => Promise<T>): Promise<T> {
    this.waiting.set(origin, (this.waiting.get(origin) ?? 0) + 1);
    let counted = true;
    const leave = (): void => {
      if (!counted) return;
      counted = false;
      const left = (this.waiting.get(origin) ?? 1) - 1;
      if (left > 0) this.waiting.set(origin, left);
      else this.waiting.delete(origin);
    };
    const onAbort = (): void => {
      leave();
      if (this.waiting.has(origin)) return;
      for (const socket of this.connecting.get(origin) ?? []) socket.destroy(new CancelledError(`connecting to ${origin}: nobody waits for the connection any more`));
    };
    if (signal?.aborted === true) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
    try {
      return await run();
    } finally {
      signal?.removeEventListener('abort', onAbort);
      leave();
    }
  }

  private forget(origin: string, sockets: Set<Socket>, socket: Socket): void {
    sockets.delete(socket);
    if (sockets.size === 0 && this.connecting.get(origin) === sockets) this.connecting.delete(origin);
  }
}
