import type { Http2Session } from 'node:http2';
import type { Clock, TimerHandle } from '../../util/clock';
import type { KeepaliveOptions } from './options';

/**
 * PING liveness for one HTTP/2 session (both sides; ztunnel h2 client and server). A
 * PING goes out every `interval`; if its ACK does not arrive within `timeout`, `onDead`
 * runs once and the owner tears the session down. This is what notices a peer node that
 * vanished without a FIN/RST on a pooled, idle connection.
 * One outstanding PING at a time; timers are unref'd so they never hold the process open.
 */
export class Keepalive {
  private nextPing: TimerHandle | null = null;
  private deadline: TimerHandle | null = null;
  private stopped = false;

  constructor(
    private readonly session: Http2Session,
    private readonly clock: Clock,
    private readonly opts: KeepaliveOptions,
    private readonly onDead: (why: string) => void,
  ) {
    if (opts.interval > 0) this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.nextPing) this.clock.clearTimeout(this.nextPing);
    if (this.deadline) this.clock.clearTimeout(this.deadline);
    this.nextPing = this.deadline = null;
  }

  private schedule(): void {
    this.nextPing = this.clock.setTimeout(this.sendPing, this.opts.interval);
    this.nextPing.unref?.();
  }

  private readonly sendPing = (): void => {
    this.nextPing = null;
    if (this.stopped || this.session.destroyed || this.session.closed) return;
    let sent = false;
    try {
      sent = this.session.ping(this.onAck);
    } catch {
      sent = false;
    }
    if (!sent) return; // session is going away; its owner sees 'close'
    this.deadline = this.clock.setTimeout(this.onTimeout, this.opts.timeout);
    this.deadline.unref?.();
  };

  private readonly onAck = (err: Error | null): void => {
    if (this.deadline) this.clock.clearTimeout(this.deadline);
    this.deadline = null;
    if (err || this.stopped) return;
    this.schedule();
  };

  private readonly onTimeout = (): void => {
    this.deadline = null;
    if (this.stopped) return;
    this.stop();
    this.onDead(`no PING ACK within ${this.opts.timeout}ms`);
  };
}
