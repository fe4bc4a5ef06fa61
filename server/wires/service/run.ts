/**
 * `layerpipe serve --listen`: serves on every listener (the unix socket or systemd's, and any
 * WebSocket services) until SIGTERM or SIGINT, then stops them all as their stop() describes.
 * The caller owns the context's resources and closes them afterwards.
 */
import { prepareSocketDirectory, type ListenTarget } from './address';
import { SeqpacketService, type ServiceOptions } from './service';
import { UnixSeqpacketListener } from './unix-listener';

const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT'];

/** A started service: something that serves until stopped. */
export interface RunningService {
  readonly connectionCount: number;
  stop(): Promise<void>;
}

export function openListener(target: ListenTarget, options: Pick<ServiceOptions, 'log'>, env: NodeJS.ProcessEnv = process.env): UnixSeqpacketListener {
  if (target.kind === 'fd') return UnixSeqpacketListener.adopt(target.fd, target.name, options.log);
  prepareSocketDirectory(target.path, env);
  return UnixSeqpacketListener.bind(target.path, options.log);
}

/** The unix service on `target`, started. */
export function startUnixService(target: ListenTarget, options: ServiceOptions): SeqpacketService {
  const service = new SeqpacketService(openListener(target, options), options);
  service.start();
  return service;
}

/**
 * Starts the services `start` makes (it pushes each into `services` as soon as it listens) and
 * serves until a stop signal; resolves once every service has stopped. The handlers come first:
 * a listener accepts connections as soon as it is bound, so a client (or a supervisor) may
 * signal the service from that moment on. If starting fails, the caller stops what `services` holds.
 */
export async function serveUntilSignalled(services: RunningService[], start: (services: RunningService[]) => Promise<void>, options: Pick<ServiceOptions, 'log'>): Promise<void> {
  let signalled: NodeJS.Signals | undefined;
  let onStop: () => void = () => undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    for (const s of STOP_SIGNALS) process.off(s, onSignal);
    signalled = signal;
    onStop();
  };
  for (const s of STOP_SIGNALS) process.on(s, onSignal);
  try {
    await start(services);
  } catch (err) {
    for (const s of STOP_SIGNALS) process.off(s, onSignal);
    throw err;
  }
  await new Promise<void>((resolve) => {
    onStop = () => {
      const connections = services.reduce((n, s) => n + s.connectionCount, 0);
      options.log.debug(`${signalled ?? 'signal'}: stopping (${connections} connection(s))`);
      void Promise.all(services.map((s) => s.stop())).then(() => resolve());
    };
    if (signalled !== undefined) onStop();
  });
}
