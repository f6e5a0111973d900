import type { Authorization, Cidr, Match, ServiceAccountMatch, StringMatch } from '../state/types';
import { policyKey } from '../state/types';
import type { StateView } from '../state/view';
import { bytesInCidr, ipBytes } from '../util/ip';
import type { AuthzContext, AuthzDecision, AuthzVerdict } from './types';

/**
 * L4 authorization with ztunnel's exact semantics (rbac.rs / state.rs assert_rbac):
 *   1. any matching DENY → deny;  2. no ALLOW policy → allow;
 *   3. any matching ALLOW → allow; 4. otherwise deny.
 * Dry-run policies take no part in the decision; the ones that matched are reported.
 * Pure and synchronous: it runs once per connection and again on every policy change
 * (late rejection), so it does no I/O and no logging.
 */
export function authorize(policies: readonly Authorization[], ctx: AuthzContext): AuthzDecision {
  const subject = subjectOf(ctx);
  let wouldDeny: string[] | undefined;
  let wouldAllow: string[] | undefined;
  let denyBy: string | null = null;
  let allowBy: string | null = null;
  let haveAllow = false;
  for (const p of policies) {
    if (p.action === 'Allow' && !p.dryRun) haveAllow = true;
    // Once enforcement is decided the remaining enforced policies need not be evaluated,
    // but dry-run ones still are, so their log lines do not depend on policy order.
    if (!p.dryRun && (denyBy !== null || (p.action === 'Allow' && allowBy !== null))) continue;
    if (!policyMatchesSubject(p, subject)) continue;
    if (p.dryRun) {
      if (p.action === 'Deny') (wouldDeny ??= []).push(policyKey(p));
      else (wouldAllow ??= []).push(policyKey(p));
    } else if (p.action === 'Deny') denyBy = policyKey(p);
    else allowBy = policyKey(p);
  }
  const extra = {
    ...(wouldDeny ? { dryRunWouldDeny: wouldDeny } : {}),
    ...(wouldAllow ? { dryRunWouldAllow: wouldAllow } : {}),
    ...(policies.some((p) => p.dryRun) ? { dryRunDecision: enforcingAll(policies, subject) } : {}),
  };
  if (denyBy !== null) return { allowed: false, policy: denyBy, why: `explicitly denied by: ${denyBy}`, ...extra };
  if (!haveAllow) return { allowed: true, policy: null, why: 'no ALLOW policy applies', ...extra };
  if (allowBy !== null) return { allowed: true, policy: allowBy, why: `allowed by: ${allowBy}`, ...extra };
  return { allowed: false, policy: null, why: 'allow policies exist, but none allowed', ...extra };
}

/** The verdict with dry-run policies enforced like the others (only computed when one applies). */
function enforcingAll(policies: readonly Authorization[], subject: Subject): AuthzVerdict {
  let haveAllow = false;
  let allowBy: string | null = null;
  for (const p of policies) {
    if (p.action === 'Allow') haveAllow = true;
    if (!policyMatchesSubject(p, subject)) continue;
    if (p.action === 'Deny') return { allowed: false, policy: policyKey(p), why: `explicitly denied by: ${policyKey(p)}` };
    allowBy ??= policyKey(p);
  }
  if (!haveAllow) return { allowed: true, policy: null, why: 'no ALLOW policy applies' };
  if (allowBy !== null) return { allowed: true, policy: allowBy, why: `allowed by: ${allowBy}` };
  return { allowed: false, policy: null, why: 'allow policies exist, but none allowed' };
}

/** The policy set of ctx.dstWorkload from the state, then authorize (the data path's Authorizer). */
export function authorizeWithState(state: StateView, ctx: AuthzContext): AuthzDecision {
  return authorize(state.policiesFor(ctx.dstWorkload), ctx);
}

/** What a connection presents to matchers, computed once per authorization. */
interface Subject {
  /** `td/ns/x/sa/y` or null without a peer identity. */
  readonly principal: string | null;
  /** The peer identity's namespace, "" without identity. */
  readonly namespace: string;
  readonly serviceAccount: string | null;
  readonly src: Uint8Array | null;
  readonly dst: Uint8Array | null;
  readonly port: number;
}

function subjectOf(ctx: AuthzContext): Subject {
  const id = ctx.srcIdentity;
  return {
    principal: id ? id.principal() : null,
    namespace: id ? id.namespace : '',
    serviceAccount: id ? id.serviceAccount : null,
    src: ipBytes(ctx.srcIp),
    dst: ipBytes(ctx.dstIp),
    port: ctx.dstPort,
  };
}

/** Whether one policy's rules match the connection (action and dry-run aside). */
export function policyMatches(p: Authorization, ctx: AuthzContext): boolean {
  return policyMatchesSubject(p, subjectOf(ctx));
}

function policyMatchesSubject(p: Authorization, s: Subject): boolean {
  // No rules: never matches (an ALLOW without rules allows nothing, a DENY denies nothing).
  for (const rule of p.rules) {
    let ruleMatch = true;
    for (const clause of rule) {
      // An empty clause is true; otherwise any non-empty Match must match.
      if (clause.length > 0 && !clause.some((m) => !isEmptyMatch(m) && matchMatches(m, s))) {
        ruleMatch = false;
        break;
      }
    }
    if (ruleMatch) return true;
  }
  return false;
}

export function isEmptyMatch(m: Match): boolean {
  return (
    m.namespaces.length === 0 &&
    m.notNamespaces.length === 0 &&
    m.principals.length === 0 &&
    m.notPrincipals.length === 0 &&
    m.serviceAccounts.length === 0 &&
    m.notServiceAccounts.length === 0 &&
    m.sourceIps.length === 0 &&
    m.notSourceIps.length === 0 &&
    m.destinationIps.length === 0 &&
    m.notDestinationIps.length === 0 &&
    m.destinationPorts.length === 0 &&
    m.notDestinationPorts.length === 0
  );
}

/** Every populated field type must hold: positive lists any-of, negative lists none-of. */
function matchMatches(m: Match, s: Subject): boolean {
  // A pure AND, so the order is free: cheap comparisons first, CIDR tests last.
  return (
    both(m.destinationPorts, m.notDestinationPorts, (p) => p === s.port) &&
    both(m.principals, m.notPrincipals, (sm) => s.principal !== null && stringMatches(sm, s.principal)) &&
    both(m.namespaces, m.notNamespaces, (sm) => stringMatches(sm, s.namespace)) &&
    both(m.serviceAccounts, m.notServiceAccounts, (sa) => saMatches(sa, s)) &&
    both(m.sourceIps, m.notSourceIps, (c) => inCidr(s.src, c)) &&
    both(m.destinationIps, m.notDestinationIps, (c) => inCidr(s.dst, c))
  );
}

function both<T>(positive: readonly T[], negative: readonly T[], pred: (t: T) => boolean): boolean {
  if (positive.length > 0 && !positive.some(pred)) return false;
  if (negative.length > 0 && negative.some(pred)) return false;
  return true;
}

function inCidr(ip: Uint8Array | null, c: Cidr): boolean {
  const net = ipBytes(c.ip);
  return ip !== null && net !== null && bytesInCidr(ip, net, c.prefixLen);
}

function saMatches(sa: ServiceAccountMatch, s: Subject): boolean {
  return s.serviceAccount !== null && sa.namespace === s.namespace && sa.serviceAccount === s.serviceAccount;
}

export function stringMatches(m: StringMatch, value: string): boolean {
  switch (m.kind) {
    case 'Exact':
      return value === m.value;
    case 'Prefix':
      return value.startsWith(m.value);
    case 'Suffix':
      return value.endsWith(m.value);
    case 'Presence':
      return value !== '';
  }
}

const EMPTY_MATCH: Match = {
  namespaces: [],
  notNamespaces: [],
  principals: [],
  notPrincipals: [],
  serviceAccounts: [],
  notServiceAccounts: [],
  sourceIps: [],
  notSourceIps: [],
  destinationIps: [],
  notDestinationIps: [],
  destinationPorts: [],
  notDestinationPorts: [],
};

/** A Match with only the given fields set (the rest empty). */
export function match(fields: Partial<Match>): Match {
  return { ...EMPTY_MATCH, ...fields };
}

/**
 * istiod's translation of PeerAuthentication STRICT: a DENY of any connection without a
 * peer identity (`not_principals: [presence]`). Workloads under STRICT list it in
 * `authorizationPolicies`; plaintext (15006) is then denied and HBONE always passes.
 */
export function staticStrictPolicy(rootNamespace = 'istio-system'): Authorization {
  return {
    name: 'istio_converted_static_strict',
    namespace: rootNamespace,
    scope: 'WorkloadSelector',
    action: 'Deny',
    dryRun: false,
    rules: [[[match({ notPrincipals: [{ kind: 'Presence' }] })]]],
  };
}
