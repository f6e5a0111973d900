import type { SpiffeId } from '../identity/spiffe';
import type { Workload } from '../state/types';

/** Everything authorization looks at (ztunnel's ConnectionInfo). Built once per connection. */
export interface AuthzContext {
  /** TCP peer address (never a header): for HBONE the peer proxy, for 15006 the client. */
  readonly srcIp: string;
  /** From the verified peer certificate only; null for plaintext. */
  readonly srcIdentity: SpiffeId | null;
  readonly dstIp: string;
  /** The target port, not 15008. */
  readonly dstPort: number;
  readonly dstWorkload: Workload;
}

/**
 * `policy` is the deciding policy (`namespace/name`), null when no policy decided (no ALLOW
 * policy exists, or ALLOW policies exist but none matched). Dry-run policies never decide;
 * the ones that matched are listed so the caller can log "dry-run: would deny/allow".
 */
export type AuthzDecision =
  | { readonly allowed: true; readonly policy: string | null; readonly why: string; readonly dryRunWouldDeny?: readonly string[]; readonly dryRunWouldAllow?: readonly string[] }
  | { readonly allowed: false; readonly policy: string | null; readonly why: string; readonly dryRunWouldDeny?: readonly string[]; readonly dryRunWouldAllow?: readonly string[] };
