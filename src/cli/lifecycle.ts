import type { Logger } from 'pino';
import type { CliIo } from './command';

export interface Service {
  start(): Promise<unknown>;
  close(): Promise<void>;
  destroy(): void;
}

/**
 * Starts a service and runs it until SIGTERM/SIGINT or until `stopped` resolves (e.g.
 * /quitquitquit). Signal handlers are installed BEFORE start, so a signal that arrives
 * during start-up still drains instead of killing the process. A second signal forces.
 * Resolves the exit code: 0 after a drain, or rejects with the start-up error.
 */
export async function runService(io: CliIo, logger: Logger, svc: Service, stopped: Promise<void>): Promise<number> {
  let signals = 0;
  let resolveSignal!: () => void;
  const signalled = new Promise<void>((r) => (resolveSignal = r));
  const off = io.onSignal((signal) => {
    signals++;
    if (signals === 1) {
      logger.info({ signal }, 'received signal, shutting down');
      resolveSignal();
    } else {
      logger.warn({ signal }, 'second signal, forcing shutdown');
      svc.destroy();
      forced();
    }
  });
  let forced!: () => void;
  const forcedP = new Promise<void>((r) => (forced = r));
  try {
    await svc.start();
  } catch (err) {
    off();
    logger.fatal({ err }, 'start-up failed');
    logger.flush?.();
    throw err;
  }
  await Promise.race([signalled.then(() => Promise.race([svc.close(), forcedP])), stopped, forcedP]);
  off();
  return 0;
}
