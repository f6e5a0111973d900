import { status, type StatusObject } from '@grpc/grpc-js';
import type { Reason } from '../errors';
import { grpcTarget, targetHost } from '../identity/ca-credentials';
import type { TerminationReason } from './metrics';

/** A failed or ended stream, classified for the log, the metric and /config_dump. */
export interface Termination {
  readonly metric: TerminationReason;
  readonly reason: Reason | null;
  readonly message: string;
}

const TLS_TEXT = /certificate|self[- ]signed|altnames|unable to verify|SSL|TLS|handshake/i;
const DNS_TEXT = /ENOTFOUND|EAI_AGAIN|getaddrinfo|name resolution|DNS resolution failed/i;

/**
 * How an xDS stream to `address` ended, as ztunnel counts it (ConnectionError, Error,
 * Reconnect, Complete) plus our reason code and a message naming the address and the likely
 * cause (DNS, TLS root, token). A connect failure shows up as UNAVAILABLE before any response.
 */
export function classifyTermination(address: string, s: StatusObject, hadResponse: boolean): Termination {
  const where = `xDS stream to ${address}`;
  const details = s.details || status[s.code] || String(s.code);
  if (s.code === status.OK) return { metric: 'Complete', reason: null, message: `${where} completed by the server` };
  if (s.code === status.UNAUTHENTICATED || s.code === status.PERMISSION_DENIED) {
    return { metric: 'Error', reason: 'XDS_AUTH', message: `${where} refused (${status[s.code]}: ${details}); likely cause: AUTH_TOKEN is missing, expired or not for audience istio-ca, or POD_NAMESPACE does not match the token` };
  }
  if (s.code === status.UNAVAILABLE && !hadResponse) {
    if (TLS_TEXT.test(details)) return { metric: 'ConnectionError', reason: 'XDS_TLS', message: `${where}: TLS failed (${details}); likely cause: XDS_ROOT_CA does not verify the server certificate, or its name does not match (set ALT_XDS_HOSTNAME)` };
    if (DNS_TEXT.test(details)) {
      const host = targetHost(grpcTarget(address));
      return { metric: 'ConnectionError', reason: 'XDS_UNREACHABLE', message: `${where}: DNS cannot resolve the host ${JSON.stringify(host)} (${details}); likely cause: a wrong host name in XDS_ADDRESS, or DNS is not reachable from this node` };
    }
    return { metric: 'ConnectionError', reason: 'XDS_UNREACHABLE', message: `${where}: cannot connect (${details}); likely cause: the control plane is not running or not reachable at XDS_ADDRESS` };
  }
  // A stream that worked and then ended (server restart, GOAWAY, max connection age) is
  // a normal reconnect, not an error.
  if (hadResponse || s.code === status.CANCELLED || s.code === status.DEADLINE_EXCEEDED || s.code === status.UNKNOWN) {
    return { metric: 'Reconnect', reason: null, message: `${where} ended (${status[s.code]}: ${details}); reconnecting` };
  }
  return { metric: 'Error', reason: 'XDS_UNREACHABLE', message: `${where} failed (${status[s.code]}: ${details})` };
}
