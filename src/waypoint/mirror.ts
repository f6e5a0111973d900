import * as http from 'node:http';
import type * as http2 from 'node:http2';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import { errorMessage } from '../errors';
import { pickServiceEndpoint } from '../state/service-endpoint';
import type { StateView } from '../state/view';
import type { BackendRef } from './config/types';
import { findService, type L7Decision } from './l7/decide';
import type { HeaderBag } from './l7/filters';
import type { ConnInfo } from './request-context';
import type { Upstreams } from './upstream';
import { trailerFields, type DownReq } from './body';

export interface RequestMirrorDeps {
  readonly state: StateView;
  readonly network: string;
  readonly clusterDomain: string;
  readonly upstreams: Upstreams;
  readonly registry: Registry;
  readonly logger: Logger;
  readonly random: () => number;
  /** Bytes of request body one mirrored copy may hold unsent before it is dropped. */
  readonly maxBufferedBytes: number;
  /** A copy still in flight this long after it started is dropped (its response is never used). */
  readonly deadlineMs: number;
}

type DropReason = 'slow' | 'no_endpoint' | 'error' | 'deadline';

/** How often a run of drops is logged (the first drop is logged at once). */
const LOG_EVERY_MS = 10_000;

/**
 * The RequestMirror filter: a copy of the request to an endpoint of the mirror backend,
 * its response discarded. The copy reads the primary's body as it flows and never pushes
 * back on it: it may hold at most `maxBufferedBytes` not yet accepted by the mirror's
 * connection, and a copy that would exceed that (a slow mirror), fails or outlives its
 * deadline is dropped: aborted, counted in ztunnel_ts_waypoint_mirror_dropped_total by
 * reason, and logged (rate-limited). The primary request never waits for a mirror.
 */
export class RequestMirror {
  private readonly dropped: Counter<'reason'>;
  private unlogged = 0;
  private lastLogMs = -Infinity;

  constructor(private readonly d: RequestMirrorDeps) {
    this.dropped = new Counter({ name: 'ztunnel_ts_waypoint_mirror_dropped_total', help: 'Mirrored request copies dropped, by reason (slow: the copy would buffer more than the limit; no_endpoint; error; deadline)', labelNames: ['reason'], registers: [d.registry] });
  }

  /** Starts the copy of `req` (HTTP/2 upstream when `h2`); never throws, never blocks `req`. */
  send(req: DownReq, dec: Extract<L7Decision, { kind: 'forward' }>, headers: HeaderBag, info: ConnInfo, grpc: boolean, h2: boolean): void {
    const m = dec.mirror;
    if (!m) return;
    const d = this.d;
    const svc = findService(d.state, m.backend.name, m.backend.namespace, d.clusterDomain);
    const ep = svc ? pickServiceEndpoint(d.state, svc, m.backend.port, { src: info.srcWorkload, network: d.network, family: info.dst.ip.includes(':') ? 6 : 4, random: d.random }) : null;
    if (!ep?.ok) return this.drop('no_endpoint', m.backend, ep ? ep.message : 'no such Service');
    // Envoy marks shadow traffic by suffixing the host with -shadow.
    const host = `${dec.host}-shadow`;
    const copy = new MirrorCopy(this, m.backend, req, d.maxBufferedBytes);
    const timer = setTimeout(() => copy.abandon('deadline', `still in flight after ${d.deadlineMs}ms`), d.deadlineMs);
    copy.onDone = () => clearTimeout(timer);
    if (!h2) {
      const up = http.request({ agent: d.upstreams.agent(ep), method: req.method, path: dec.path, headers: { ...headers, host }, setHost: false });
      up.on('response', (r) => {
        r.resume();
        r.once('end', () => copy.done());
      });
      copy.attach(up, (t) => {
        if (t) up.addTrailers(t);
        up.end();
      });
      return;
    }
    d.upstreams.session(ep).then(
      (session) => {
        if (copy.finished) return;
        let up: http2.ClientHttp2Stream;
        try {
          up = session.request({ ...headers, ':method': req.method, ':path': dec.path, ':authority': host, ':scheme': 'http', ...(grpc ? { te: 'trailers' } : {}) }, { waitForTrailers: true });
        } catch (err) {
          return copy.abandon('error', errorMessage(err));
        }
        let t: Record<string, string> | null = null;
        up.once('wantTrailers', () => up.sendTrailers(t ?? {}));
        up.on('response', () => up.resume());
        up.once('end', () => copy.done());
        copy.attach(up, (tr) => {
          t = tr;
          up.end();
        });
      },
      (err: Error) => copy.abandon('error', errorMessage(err)),
    );
  }

  /** Counts one dropped copy; logs the first at once, then at most every LOG_EVERY_MS with how many were dropped since. */
  drop(reason: DropReason, backend: BackendRef, why: string): void {
    this.dropped.inc({ reason });
    this.unlogged++;
    const now = performance.now();
    if (now - this.lastLogMs < LOG_EVERY_MS) return;
    this.lastLogMs = now;
    this.d.logger.warn({ mirror: `${backend.namespace}/${backend.name}:${backend.port}`, reason, dropped: this.unlogged, err: why }, 'request mirror copy dropped; the primary request is unaffected');
    this.unlogged = 0;
  }
}

type Upstream = http.ClientRequest | http2.ClientHttp2Stream;

/** One mirrored copy: the primary's body chunks, held while its upstream is not yet open, written with a byte bound. */
class MirrorCopy {
  finished = false;
  onDone: (() => void) | null = null;
  private up: Upstream | null = null;
  private end: ((t: Record<string, string> | null) => void) | null = null;
  private held: Buffer[] = [];
  private heldBytes = 0;
  private ended = false;

  constructor(
    private readonly owner: RequestMirror,
    private readonly backend: BackendRef,
    private readonly req: DownReq,
    private readonly limit: number,
  ) {
    req.on('data', this.onData);
    req.once('end', this.onEnd);
    req.once('close', this.onClose);
  }

  private readonly onData = (c: Buffer): void => {
    const up = this.up;
    const pending = up ? up.writableLength : this.heldBytes;
    if (pending + c.length > this.limit) return this.abandon('slow', `the mirror has ${pending} bytes unsent (limit ${this.limit})`);
    if (up) up.write(c);
    else {
      this.held.push(c);
      this.heldBytes += c.length;
    }
  };

  private readonly onEnd = (): void => {
    this.ended = true;
    if (this.up && this.end) this.end(trailerFields(this.req.trailers));
  };

  private readonly onClose = (): void => {
    // The client went away mid-body: the copy is incomplete and is dropped without counting.
    if (!this.ended) this.stop();
  };

  /** The copy's upstream is open: flush what was held, then follow the primary's body. */
  attach(up: Upstream, end: (t: Record<string, string> | null) => void): void {
    if (this.finished) {
      up.destroy();
      return;
    }
    this.up = up;
    this.end = end;
    up.on('error', (err: Error) => this.abandon('error', errorMessage(err)));
    for (const c of this.held) up.write(c);
    this.held = [];
    this.heldBytes = 0;
    if (this.ended) end(trailerFields(this.req.trailers));
  }

  done(): void {
    if (this.finished) return;
    this.stop();
  }

  abandon(reason: DropReason, why: string): void {
    if (this.finished) return;
    this.stop();
    this.up?.destroy();
    this.owner.drop(reason, this.backend, why);
  }

  private stop(): void {
    this.finished = true;
    this.req.off('data', this.onData);
    this.req.off('end', this.onEnd);
    this.req.off('close', this.onClose);
    this.held = [];
    this.onDone?.();
  }
}
