import { randomBytes } from 'node:crypto';
import type { Service, Workload } from '../state/types';
import { formatSocketAddr, type SocketAddr } from '../util/socket-addr';

/**
 * The CONNECT request headers the outbound side sends (ztunnel-wire §2/§3): baggage with the
 * source workload's metadata (only non-empty members), `forwarded` with the client address
 * (and the service host when the destination is a service), and a fresh W3C traceparent
 * per connection. Pure: no I/O; randomness comes from crypto.
 */
export function buildOutboundHeaders(src: Workload, client: SocketAddr, service: Service | null): Record<string, string> {
  const headers: Record<string, string> = {};
  const baggage = buildBaggage(src);
  if (baggage) headers['baggage'] = baggage;
  headers['forwarded'] = `for="${formatSocketAddr(client)}"${service ? `;host=${service.hostname}` : ''}`;
  headers['traceparent'] = newTraceparent();
  return headers;
}

/** `k8s.cluster.name=…,k8s.namespace.name=…,k8s.<type>.name=…,service.name=…,service.version=…`. */
export function buildBaggage(w: Workload): string {
  const parts: string[] = [];
  const add = (k: string, v: string): void => {
    if (v) parts.push(`${k}=${encodeURIComponent(v)}`);
  };
  add('k8s.cluster.name', w.clusterId);
  add('k8s.namespace.name', w.namespace);
  add(`k8s.${w.workloadType || 'deployment'}.name`, w.workloadName);
  add('service.name', w.canonicalName);
  add('service.version', w.canonicalRevision);
  return parts.join(',');
}

/** `00-<32 hex trace id>-<16 hex span id>-00`, never all zeros (W3C Trace Context §3.2). */
export function newTraceparent(): string {
  const b = randomBytes(24);
  if (b.subarray(0, 16).every((x) => x === 0)) b[15] = 1;
  if (b.subarray(16).every((x) => x === 0)) b[23] = 1;
  return `00-${b.toString('hex', 0, 16)}-${b.toString('hex', 16, 24)}-00`;
}
