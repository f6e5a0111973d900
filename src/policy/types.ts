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

export type AuthzDecision =
  | { readonly allowed: true; readonly policy: string | null; readonly why: string }
  | { readonly allowed: false; readonly policy: string | null; readonly why: string };
