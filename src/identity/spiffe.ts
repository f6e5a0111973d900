/** Thrown for any string that is not exactly `spiffe://TD/ns/NS/sa/SA`; names the input. */
export class SpiffeParseError extends Error {
  constructor(readonly input: string, why: string) {
    super(`invalid SPIFFE identity ${JSON.stringify(input)}: ${why}`);
    this.name = 'SpiffeParseError';
  }
}

const SEGMENT = /^[A-Za-z0-9._-]+$/;
const TRUST_DOMAIN = /^[a-z0-9._-]+$/;

/**
 * A workload identity `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`. Parsing
 * is strict (ztunnel's 5-segment rule): anything else is an error, never a best guess.
 */
export class SpiffeId {
  private constructor(
    readonly trustDomain: string,
    readonly namespace: string,
    readonly serviceAccount: string,
  ) {}

  static of(trustDomain: string, namespace: string, serviceAccount: string): SpiffeId {
    const s = `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
    return SpiffeId.parse(s);
  }

  static parse(input: string): SpiffeId {
    if (!input.startsWith('spiffe://')) throw new SpiffeParseError(input, 'must start with spiffe://');
    const rest = input.slice('spiffe://'.length);
    const parts = rest.split('/');
    if (parts.length !== 5) throw new SpiffeParseError(input, 'expected spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>');
    const [td, ns, nsv, sa, sav] = parts as [string, string, string, string, string];
    if (!TRUST_DOMAIN.test(td)) throw new SpiffeParseError(input, `bad trust domain ${JSON.stringify(td)}`);
    if (ns !== 'ns' || sa !== 'sa') throw new SpiffeParseError(input, 'path must be /ns/<namespace>/sa/<service-account>');
    if (!SEGMENT.test(nsv)) throw new SpiffeParseError(input, `bad namespace ${JSON.stringify(nsv)}`);
    if (!SEGMENT.test(sav)) throw new SpiffeParseError(input, `bad service account ${JSON.stringify(sav)}`);
    return new SpiffeId(td, nsv, sav);
  }

  /** Parses, returning null instead of throwing (for peer SAN scanning). */
  static tryParse(input: string): SpiffeId | null {
    try {
      return SpiffeId.parse(input);
    } catch {
      return null;
    }
  }

  equals(other: SpiffeId | null | undefined): boolean {
    return !!other && other.trustDomain === this.trustDomain && other.namespace === this.namespace && other.serviceAccount === this.serviceAccount;
  }

  toString(): string {
    return `spiffe://${this.trustDomain}/ns/${this.namespace}/sa/${this.serviceAccount}`;
  }

  /** Authorization compares principals without the scheme: `td/ns/x/sa/y`. */
  principal(): string {
    return `${this.trustDomain}/ns/${this.namespace}/sa/${this.serviceAccount}`;
  }

  toJSON(): string {
    return this.toString();
  }
}

/** The identity fields every workload carries (validated when the state is normalised). */
export interface IdentityFields {
  readonly trustDomain: string;
  readonly namespace: string;
  readonly serviceAccount: string;
}

/**
 * Identities by workload object. State objects are replaced, never modified, when the state
 * changes, so an entry cannot outlive the fields it was made from; the routing, the context
 * and the HBONE dial each asked for the same workload's identity on every connection.
 */
const identities = new WeakMap<IdentityFields, SpiffeId>();

/** The SPIFFE identity a workload runs as: the one helper for it on every path. */
export function workloadIdentity(w: IdentityFields): SpiffeId {
  let id = identities.get(w);
  if (id === undefined) {
    id = SpiffeId.of(w.trustDomain, w.namespace, w.serviceAccount);
    identities.set(w, id);
  }
  return id;
}
