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

/** Serves until a stop signal has been handled; resolves once every service has stopped. */
export async function serveUntilSignalled(services: readonly RunningService[], options: Pick<ServiceOptions, 'log'>): Promise<void> {
  await new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      for (const s of STOP_SIGNALS) process.off(s, onSignal);
      const connections = services.reduce((n, s) => n + s.connectionCount, 0);
      options.log.debug(`${signal}: stopping (${connections} connection(s))`);
      void Promise.all(services.map((s) => s.stop())).then(() => resolve());
    };
    for (const s of STOP_SIGNALS) process.on(s, onSignal);
  });
}
