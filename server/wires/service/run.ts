/**
 * `layerpipe serve --listen`: listens (or takes systemd's socket), serves until SIGTERM or
 * SIGINT, then stops as SeqpacketService.stop() describes. The caller owns the context's
 * resources and closes them afterwards.
 */
import { prepareSocketDirectory, type ListenTarget } from './address';
import { SeqpacketService, type ServiceOptions } from './service';
import { UnixSeqpacketListener } from './unix-listener';

const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT'];

export function openListener(target: ListenTarget, options: Pick<ServiceOptions, 'log'>, env: NodeJS.ProcessEnv = process.env): UnixSeqpacketListener {
  if (target.kind === 'fd') return UnixSeqpacketListener.adopt(target.fd, target.name, options.log);
  prepareSocketDirectory(target.path, env);
  return UnixSeqpacketListener.bind(target.path, options.log);
}

/** Serves until a stop signal has been handled; resolves once every connection is closed. */
export async function serveUntilSignalled(target: ListenTarget, options: ServiceOptions): Promise<void> {
  const service = new SeqpacketService(openListener(target, options), options);
  const stopped = new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      for (const s of STOP_SIGNALS) process.off(s, onSignal);
      options.log.debug(`${signal}: stopping (${service.connectionCount} connection(s))`);
      void service.stop().then(resolve);
    };
    for (const s of STOP_SIGNALS) process.on(s, onSignal);
  });
  service.start();
  await stopped;
}
