import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import type { Service } from '../../state/types';
import type { Clock } from '../../util/clock';
import type { L7Config } from '../config/types';
import type { HeaderBag } from '../l7/filters';
import type { L7Request } from '../l7/request';
import type { WaypointName } from '../l7/route-select';
import { allJwtRules, authenticate, jwtRulesFor, outputHeaderNames } from './authenticate';
import { JwksStore } from './jwks';
import type { AuthnResult, JwtRule } from './types';

export interface RequestAuthOptions {
  readonly logger: Logger;
  readonly clock: Clock;
  readonly registry: Registry;
  readonly refreshIntervalMs: number;
  readonly waypoint: WaypointName;
}

/** What applies to one request: its rules and the headers no client may send in their place. */
interface Applicable {
  readonly rules: readonly JwtRule[];
  readonly outputHeaders: readonly string[];
}

const NOTHING: Applicable = { rules: [], outputHeaders: [] };

/**
 * The waypoint's request authentication (RequestAuthentication → JWT): which jwtRules apply
 * to a request (memoised per config and Service, so a request pays a map lookup), the
 * verification, and the header changes a verified token makes. The key store is kept in
 * step with every applied config.
 */
export class RequestAuth {
  readonly jwks: JwksStore;
  private readonly decisions: Counter<'result' | 'rule'>;
  private memo: { config: L7Config; byService: Map<string, Applicable> } | null = null;

  constructor(private readonly o: RequestAuthOptions) {
    const fetches = new Counter({ name: 'ztunnel_ts_jwks_fetches_total', help: 'JWKS fetches by the waypoint, by URI and result (ok, error)', labelNames: ['uri', 'result'], registers: [o.registry] });
    this.decisions = new Counter({ name: 'ztunnel_ts_jwt_authn_total', help: 'Requests that carried a JWT, by result (ok or the refusal reason) and the jwtRule that decided', labelNames: ['result', 'rule'], registers: [o.registry] });
    this.jwks = new JwksStore({ logger: o.logger, clock: o.clock, refreshIntervalMs: o.refreshIntervalMs, onFetch: (uri, ok) => fetches.inc({ uri, result: ok ? 'ok' : 'error' }) });
  }

  /** A newly applied config: fetch the key sets it names, drop the others. */
  onConfig(config: L7Config): void {
    this.jwks.sync(allJwtRules(config));
  }

  applicable(config: L7Config, svc: Pick<Service, 'name' | 'namespace'> | null): Applicable {
    if (config.requestAuthns.length === 0) return NOTHING;
    if (this.memo?.config !== config) this.memo = { config, byService: new Map() };
    const key = svc ? `${svc.namespace}/${svc.name}` : '';
    let a = this.memo.byService.get(key);
    if (!a) {
      const rules = jwtRulesFor(config.requestAuthns, svc, this.o.waypoint);
      a = rules.length === 0 ? NOTHING : { rules, outputHeaders: outputHeaderNames(rules) };
      this.memo.byService.set(key, a);
    }
    return a;
  }

  /** Verifies the request's token, if any; synchronous when there is none. */
  check(a: Applicable, request: L7Request): AuthnResult | Promise<AuthnResult> {
    const r = authenticate(a.rules, request.headers, request.query, this.jwks);
    if (r instanceof Promise) return r.then((res) => this.count(res));
    return r;
  }

  private count(r: AuthnResult): AuthnResult {
    if (r.kind === 'ok') this.decisions.inc({ result: 'ok', rule: r.rule });
    else if (r.kind === 'fail') this.decisions.inc({ result: r.failure, rule: r.rule ?? '' });
    return r;
  }

  close(): void {
    this.jwks.close();
  }
}

/**
 * The upstream request's headers after authentication: the rules' output headers are
 * always removed first (only a verified token may set them, never the client), then a
 * verified token's own header is dropped unless forwardOriginalToken, and its payload and
 * claim headers are set.
 */
export function applyAuthnHeaders(headers: HeaderBag, a: Applicable, r: AuthnResult): void {
  for (const h of a.outputHeaders) delete headers[h];
  if (r.kind !== 'ok') return;
  for (const h of r.removeHeaders) delete headers[h];
  for (const s of r.setHeaders) headers[s.name] = s.value;
}

/** Envoy's 401 body: the failure in words ("Jwt is expired"). */
export function authnFailureBody(r: Extract<AuthnResult, { kind: 'fail' }>): string {
  return r.failure.replace(/_/g, ' ');
}

export type { Applicable as ApplicableAuthn };
