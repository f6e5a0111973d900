import type { Endpoint } from '../l7/decide';
import { endpointKey, type Cluster, type EndpointStats } from './cluster';
import type { TryOutcome } from './retry';
import type { OutlierDetection } from './types';

/** Whether a try's outcome is a 5xx / gateway error for outlier detection (local failures count as both). */
function classify(o: TryOutcome): { fivexx: boolean; gateway: boolean } {
  if (o.kind !== 'response') return { fivexx: true, gateway: true };
  const s = o.status;
  return { fivexx: s >= 500, gateway: s === 502 || s === 503 || s === 504 };
}

/**
 * Records one try's outcome at an endpoint; returns true when this ejects it. Consecutive
 * 5xx (consecutive5xxErrors) or gateway errors (consecutiveGatewayErrors) eject at once,
 * for baseEjectionTime × the number of times it was ejected, as long as no more than
 * maxEjectionPercent of the cluster's endpoints are out (one is always allowed).
 */
export function recordOutcome(c: Cluster, s: EndpointStats, o: TryOutcome, od: OutlierDetection, total: number, now: number): boolean {
  const k = classify(o);
  s.consecutive5xx = k.fivexx ? s.consecutive5xx + 1 : 0;
  s.consecutiveGateway = k.gateway ? s.consecutiveGateway + 1 : 0;
  if (s.ejectedUntil !== 0) return false;
  const trip = (od.consecutive5xxErrors > 0 && s.consecutive5xx >= od.consecutive5xxErrors) || (od.consecutiveGatewayErrors > 0 && s.consecutiveGateway >= od.consecutiveGatewayErrors);
  if (!trip) return false;
  const ejected = countEjected(c);
  const allowed = Math.max(1, Math.floor((total * od.maxEjectionPercent) / 100));
  if (ejected >= allowed) return false;
  s.ejections++;
  s.ejectedUntil = now + od.baseEjectionTimeMs * s.ejections;
  s.consecutive5xx = 0;
  s.consecutiveGateway = 0;
  return true;
}

export function countEjected(c: Cluster): number {
  let n = 0;
  for (const s of c.endpoints.values()) if (s.ejectedUntil !== 0) n++;
  return n;
}

/**
 * The interval sweep: endpoints whose ejection time is over return to the load balancer;
 * an endpoint that stayed in for a whole interval has its ejection multiplier lowered.
 * Returns the endpoints that returned.
 */
export function sweep(c: Cluster, now: number): string[] {
  const back: string[] = [];
  for (const s of c.endpoints.values()) {
    if (s.ejectedUntil !== 0 && now >= s.ejectedUntil) {
      s.ejectedUntil = 0;
      back.push(s.key);
    } else if (s.ejectedUntil === 0 && s.ejections > 0) s.ejections--;
  }
  return back;
}

/**
 * The endpoints the load balancer may use: those not ejected, unless fewer than
 * minHealthPercent of them are in (then outlier detection steps aside and all are used).
 */
export function admitted(c: Cluster, eps: readonly Endpoint[], od: OutlierDetection | null): readonly Endpoint[] {
  if (!od) return eps;
  const inLb = eps.filter((e) => c.endpoints.get(endpointKey(e))?.ejectedUntil ? false : true);
  if (inLb.length === eps.length) return eps;
  if ((inLb.length * 100) / eps.length < od.minHealthPercent) return eps;
  return inLb;
}
