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

/** A verdict: allowed or not, the deciding policy (`namespace/name`) or null, and why in words. */
export interface AuthzVerdict {
  readonly allowed: boolean;
  readonly policy: string | null;
  readonly why: string;
}

interface DryRunReport {
  /** Dry-run DENY / ALLOW policies whose rules matched. */
  readonly dryRunWouldDeny?: readonly string[];
  readonly dryRunWouldAllow?: readonly string[];
  /**
   * Present when a dry-run policy applies: the verdict if every dry-run policy were
   * enforced. It differs from the real one exactly when enforcing them would change the
   * outcome (e.g. a dry-run ALLOW that does not match would deny).
   */
  readonly dryRunDecision?: AuthzVerdict;
}

/**
 * `policy` is the deciding policy (`namespace/name`), null when no policy decided (no ALLOW
 * policy exists, or ALLOW policies exist but none matched). Dry-run policies never decide;
 * they are reported so the caller can log and count "dry-run: would deny/allow".
 */
export type AuthzDecision =
  | ({ readonly allowed: true; readonly policy: string | null; readonly why: string } & DryRunReport)
  | ({ readonly allowed: false; readonly policy: string | null; readonly why: string } & DryRunReport);
