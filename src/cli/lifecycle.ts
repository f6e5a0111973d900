import type { Logger } from 'pino';
import type { CliIo } from './command';

export interface Closable {
  close(): Promise<void>;
  destroy(): void;
}

/**
 * Runs until SIGTERM/SIGINT (or until `stopped` resolves, e.g. /quitquitquit): drains
 * gracefully and resolves 0. A second SIGINT force-closes at once, as ztunnel does.
 */
export function runUntilSignal(io: CliIo, logger: Logger, app: Closable, stopped: Promise<void>): Promise<number> {
  return new Promise((resolve) => {
    let signals = 0;
    const off = io.onSignal((signal) => {
      signals++;
      if (signals === 1) {
        logger.info({ signal }, 'received signal, shutting down');
        void app.close().then(() => finish(0));
      } else {
        logger.warn({ signal }, 'second signal, forcing shutdown');
        app.destroy();
        finish(0);
      }
    });
    let done = false;
    const finish = (code: number): void => {
      if (done) return;
      done = true;
      off();
      resolve(code);
    };
    void stopped.then(() => finish(0));
  });
}
