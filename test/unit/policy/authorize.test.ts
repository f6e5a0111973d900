import test from 'ava';
import { SpiffeId } from '../../../src/identity/spiffe';
import { authorize, match, policyMatches, staticStrictPolicy } from '../../../src/policy/authorize';
import type { AuthzContext } from '../../../src/policy/types';
import type { Authorization, Match, Rule } from '../../../src/state/types';
import { pol, wl } from '../state/builders';

/**
 * The published L4 authorization truth table: every match field and its
 * not_ form against a peer with identity A, identity B and no identity (plaintext), plus
 * the structural edge cases (empty rules / clauses / matches), DENY-before-ALLOW, dry-run,
 * and istiod's STRICT policy. Each row is one ava test, so the count is visible.
 */

const A = SpiffeId.of('cluster.local', 'shop', 'client');
const B = SpiffeId.of('cluster.local', 'ops', 'admin');
const dstWorkload = wl('dst', { namespace: 'shop', workloadIps: ['10.0.1.1'] });

type Peer = 'A' | 'B' | 'none';
interface Row {
  readonly name: string;
  readonly policies: readonly Authorization[];
  readonly peer?: Peer;
  readonly srcIp?: string;
  readonly dstIp?: string;
  readonly port?: number;
  readonly allowed: boolean;
  /** The deciding policy key, or null. */
  readonly by: string | null;
  readonly dryRunWouldDeny?: readonly string[];
  readonly dryRunWouldAllow?: readonly string[];
}

function ctx(r: Row): AuthzContext {
  const id = (r.peer ?? 'A') === 'A' ? A : r.peer === 'B' ? B : null;
  return { srcIp: r.srcIp ?? '10.0.0.1', srcIdentity: id, dstIp: r.dstIp ?? '10.0.1.1', dstPort: r.port ?? 8080, dstWorkload };
}

const allow = (name: string, rules: Rule[], over: Partial<Authorization> = {}): Authorization => pol('shop', name, { action: 'Allow', rules, ...over });
const deny = (name: string, rules: Rule[], over: Partial<Authorization> = {}): Authorization => pol('shop', name, { action: 'Deny', rules, ...over });
/** One rule, one clause, one match. */
const one = (m: Partial<Match>): Rule[] => [[[match(m)]]];
const ex = (value: string) => ({ kind: 'Exact' as const, value });

/** An ALLOW with a single match: allowed iff it matches. */
function allowRows(field: string, m: Partial<Match>, cases: [Peer | { srcIp?: string; dstIp?: string; port?: number; peer?: Peer }, boolean][]): Row[] {
  return cases.map(([c, ok]) => {
    const o = typeof c === 'string' ? { peer: c } : c;
    return { name: `ALLOW ${field} ${JSON.stringify(o)} → ${ok ? 'allow' : 'deny'}`, policies: [allow('p', one(m))], ...o, allowed: ok, by: ok ? 'shop/p' : null };
  });
}

const rows: Row[] = [
  // --- namespaces: the peer identity's namespace ("" without identity)
  ...allowRows('namespaces=[Exact shop]', { namespaces: [ex('shop')] }, [['A', true], ['B', false], ['none', false]]),
  ...allowRows('notNamespaces=[Exact shop]', { notNamespaces: [ex('shop')] }, [['A', false], ['B', true], ['none', true]]),
  ...allowRows('namespaces=[Presence]', { namespaces: [{ kind: 'Presence' }] }, [['A', true], ['none', false]]),
  // --- principals: td/ns/x/sa/y without spiffe://; absent identity never matches
  ...allowRows('principals=[Exact A] (istio/ztunnel#1901 principals-only ALLOW)', { principals: [ex('cluster.local/ns/shop/sa/client')] }, [['A', true], ['B', false], ['none', false]]),
  ...allowRows('principals=[Exact spiffe://…A] (scheme is stripped, so never equal)', { principals: [ex('spiffe://cluster.local/ns/shop/sa/client')] }, [['A', false]]),
  ...allowRows('principals=[Prefix cluster.local/ns/shop/]', { principals: [{ kind: 'Prefix', value: 'cluster.local/ns/shop/' }] }, [['A', true], ['B', false]]),
  ...allowRows('principals=[Suffix /sa/admin]', { principals: [{ kind: 'Suffix', value: '/sa/admin' }] }, [['A', false], ['B', true], ['none', false]]),
  ...allowRows('principals=[Presence]', { principals: [{ kind: 'Presence' }] }, [['A', true], ['none', false]]),
  ...allowRows('principals=[Exact B, Exact A] (any of)', { principals: [ex('cluster.local/ns/ops/sa/admin'), ex('cluster.local/ns/shop/sa/client')] }, [['A', true], ['B', true], ['none', false]]),
  ...allowRows('notPrincipals=[Exact A]', { notPrincipals: [ex('cluster.local/ns/shop/sa/client')] }, [['A', false], ['B', true], ['none', true]]),
  // --- service accounts: {namespace, serviceAccount} pairs
  ...allowRows('serviceAccounts=[shop/client]', { serviceAccounts: [{ namespace: 'shop', serviceAccount: 'client' }] }, [['A', true], ['B', false], ['none', false]]),
  ...allowRows('serviceAccounts=[ops/client] (same sa, other namespace)', { serviceAccounts: [{ namespace: 'ops', serviceAccount: 'client' }] }, [['A', false]]),
  ...allowRows('notServiceAccounts=[shop/client]', { notServiceAccounts: [{ namespace: 'shop', serviceAccount: 'client' }] }, [['A', false], ['B', true], ['none', true]]),
  // --- source IPs: the TCP peer, v4-mapped canonicalised, IPv6
  ...allowRows('sourceIps=[10.0.0.0/8]', { sourceIps: [{ ip: '10.0.0.0', prefixLen: 8 }] }, [
    [{ srcIp: '10.0.0.1' }, true],
    [{ srcIp: '::ffff:10.200.0.1' }, true],
    [{ srcIp: '192.168.0.5' }, false],
    [{ srcIp: 'fd00::5' }, false],
  ]),
  ...allowRows('sourceIps=[fd00::/16]', { sourceIps: [{ ip: 'fd00::', prefixLen: 16 }] }, [[{ srcIp: 'fd00:0:0::5' }, true], [{ srcIp: 'fe80::1' }, false], [{ srcIp: '10.0.0.1' }, false]]),
  ...allowRows('sourceIps=[10.0.0.7/32]', { sourceIps: [{ ip: '10.0.0.7', prefixLen: 32 }] }, [[{ srcIp: '10.0.0.7' }, true], [{ srcIp: '10.0.0.6' }, false]]),
  ...allowRows('notSourceIps=[10.0.0.0/8]', { notSourceIps: [{ ip: '10.0.0.0', prefixLen: 8 }] }, [[{ srcIp: '10.0.0.1' }, false], [{ srcIp: '192.168.0.5' }, true]]),
  // --- destination IPs: the pod IP
  ...allowRows('destinationIps=[10.0.1.0/24]', { destinationIps: [{ ip: '10.0.1.0', prefixLen: 24 }] }, [[{ dstIp: '10.0.1.1' }, true], [{ dstIp: '10.0.2.1' }, false]]),
  ...allowRows('notDestinationIps=[10.0.1.1/32]', { notDestinationIps: [{ ip: '10.0.1.1', prefixLen: 32 }] }, [[{ dstIp: '10.0.1.1' }, false], [{ dstIp: '10.0.1.2' }, true]]),
  // --- destination ports: the TARGET port, never 15008
  ...allowRows('destinationPorts=[8080]', { destinationPorts: [8080] }, [[{ port: 8080 }, true], [{ port: 9090 }, false]]),
  ...allowRows('destinationPorts=[15008] (HBONE port is not the target)', { destinationPorts: [15008] }, [[{ port: 8080 }, false]]),
  ...allowRows('notDestinationPorts=[9999] (the ztunnel example)', { notDestinationPorts: [9999] }, [[{ port: 8080 }, true], [{ port: 9999 }, false]]),
  // --- fields within one Match are ANDed
  ...allowRows('namespaces=[shop] AND destinationPorts=[9090]', { namespaces: [ex('shop')], destinationPorts: [9090] }, [[{ port: 9090 }, true], [{ port: 8080 }, false], [{ port: 9090, peer: 'B' }, false]]),
  ...allowRows('principals=[A] AND notSourceIps=[10.0.0.0/8]', { principals: [ex('cluster.local/ns/shop/sa/client')], notSourceIps: [{ ip: '10.0.0.0', prefixLen: 8 }] }, [[{ srcIp: '172.16.0.1' }, true], [{ srcIp: '10.0.0.1' }, false]]),
  ...allowRows('destinationPorts=[8080] AND notDestinationPorts=[8080] (contradiction)', { destinationPorts: [8080], notDestinationPorts: [8080] }, [[{ port: 8080 }, false]]),

  // --- structure
  { name: 'no policies at all → allow', policies: [], allowed: true, by: null },
  { name: 'ALLOW with empty rules never matches → deny', policies: [allow('p', [])], allowed: false, by: null },
  { name: 'DENY with empty rules never matches → allow (no ALLOW policy)', policies: [deny('d', [])], allowed: true, by: null },
  { name: 'rule with an empty clause list matches everything → allow', policies: [allow('p', [[]])], peer: 'none', allowed: true, by: 'shop/p' },
  { name: 'clause with no matches is true → allow', policies: [allow('p', [[[]]])], peer: 'none', allowed: true, by: 'shop/p' },
  { name: 'an empty Match never matches (ALLOW) → deny', policies: [allow('p', [[[match({})]]])], allowed: false, by: null },
  { name: 'an empty Match never matches (DENY) → allow', policies: [deny('d', [[[match({})]]])], allowed: true, by: null },
  { name: 'empty Match is skipped, the other Match in the clause decides', policies: [allow('p', [[[match({}), match({ namespaces: [ex('shop')] })]]])], allowed: true, by: 'shop/p' },
  { name: 'matches in a clause are ORed', policies: [allow('p', [[[match({ namespaces: [ex('ops')] }), match({ destinationPorts: [8080] })]]])], allowed: true, by: 'shop/p' },
  { name: 'clauses in a rule are ANDed (second fails) → deny', policies: [allow('p', [[[match({ namespaces: [ex('shop')] })], [match({ destinationPorts: [9090] })]]])], allowed: false, by: null },
  { name: 'clauses in a rule are ANDed (both hold) → allow', policies: [allow('p', [[[match({ namespaces: [ex('shop')] })], [match({ destinationPorts: [8080] })]]])], allowed: true, by: 'shop/p' },
  { name: 'rules are ORed', policies: [allow('p', [[[match({ namespaces: [ex('ops')] })]], [[match({ destinationPorts: [8080] })]]])], allowed: true, by: 'shop/p' },

  // --- ordering
  { name: 'matching DENY wins over matching ALLOW', policies: [allow('a', one({ namespaces: [ex('shop')] })), deny('d', one({ destinationPorts: [8080] }))], allowed: false, by: 'shop/d' },
  { name: 'non-matching DENY, matching ALLOW → allow by the ALLOW', policies: [deny('d', one({ destinationPorts: [1] })), allow('a', one({ namespaces: [ex('shop')] }))], allowed: true, by: 'shop/a' },
  { name: 'only a non-matching DENY → allow (no ALLOW policy)', policies: [deny('d', one({ namespaces: [ex('ops')] }))], allowed: true, by: null },
  { name: 'ALLOW for someone else → deny: allow policies exist, none allowed', policies: [allow('a', one({ principals: [ex('cluster.local/ns/ops/sa/admin')] }))], allowed: false, by: null },
  { name: 'two matching DENYs: the first in policy-set order (namespace, global, selected) is named', policies: [deny('d1', one({ destinationPorts: [8080] })), deny('d2', one({ namespaces: [ex('shop')] }))], allowed: false, by: 'shop/d1' },
  { name: 'second ALLOW matches → allow by it', policies: [allow('a1', one({ namespaces: [ex('ops')] })), allow('a2', one({ namespaces: [ex('shop')] }))], allowed: true, by: 'shop/a2' },

  // --- dry run: never enforced, reported
  { name: 'dry-run DENY that matches does not deny, is reported', policies: [deny('d', one({ namespaces: [ex('shop')] }), { dryRun: true })], allowed: true, by: null, dryRunWouldDeny: ['shop/d'] },
  { name: 'dry-run ALLOW alone is not an ALLOW policy → allow, reported', policies: [allow('a', one({ namespaces: [ex('shop')] }), { dryRun: true })], allowed: true, by: null, dryRunWouldAllow: ['shop/a'] },
  { name: 'dry-run DENY next to an enforced DENY: both evaluated', policies: [deny('real', one({ destinationPorts: [8080] })), deny('dry', one({ destinationPorts: [8080] }), { dryRun: true })], allowed: false, by: 'shop/real', dryRunWouldDeny: ['shop/dry'] },

  // --- STRICT (PeerAuthentication → istio_converted_static_strict)
  { name: 'STRICT with a peer identity (HBONE) → allow', policies: [staticStrictPolicy()], peer: 'A', allowed: true, by: null },
  { name: 'STRICT without identity (plaintext 15006) → deny by the static policy', policies: [staticStrictPolicy()], peer: 'none', allowed: false, by: 'istio-system/istio_converted_static_strict' },
  { name: 'STRICT + principals ALLOW, plaintext → denied by STRICT first', policies: [staticStrictPolicy(), allow('a', one({ principals: [{ kind: 'Presence' }] }))], peer: 'none', allowed: false, by: 'istio-system/istio_converted_static_strict' },
  { name: 'STRICT + principals ALLOW, identity B not listed → deny, none allowed', policies: [staticStrictPolicy(), allow('a', one({ principals: [ex('cluster.local/ns/shop/sa/client')] }))], peer: 'B', allowed: false, by: null },
  { name: 'STRICT in another root namespace', policies: [staticStrictPolicy('mesh-root')], peer: 'none', allowed: false, by: 'mesh-root/istio_converted_static_strict' },
];

rows.forEach((r, i) => {
  test(`truth table #${String(i + 1).padStart(2, '0')}: ${r.name}`, (t) => {
    const d = authorize(r.policies, ctx(r));
    t.is(d.allowed, r.allowed, d.why);
    t.is(d.policy, r.by);
    t.deepEqual(d.dryRunWouldDeny, r.dryRunWouldDeny);
    t.deepEqual(d.dryRunWouldAllow, r.dryRunWouldAllow);
  });
});

test('dry-run: the verdict with dry-run policies enforced is reported next to the real one', (t) => {
  // A dry-run ALLOW for someone else: enforced, it would deny this connection.
  const d = authorize([allow('a', one({ namespaces: [ex('ops')] }), { dryRun: true })], ctx({ name: '', policies: [], allowed: true, by: null, peer: 'A' }));
  t.like(d, { allowed: true, policy: null, dryRunDecision: { allowed: false, policy: null, why: 'allow policies exist, but none allowed' } });
  t.is(d.dryRunWouldAllow, undefined);
  const deny1 = authorize([allow('real', one({ namespaces: [ex('shop')] })), deny('dry', one({ destinationPorts: [8080] }), { dryRun: true })], ctx({ name: '', policies: [], allowed: true, by: null, peer: 'A' }));
  t.like(deny1, { allowed: true, policy: 'shop/real', dryRunWouldDeny: ['shop/dry'], dryRunDecision: { allowed: false, policy: 'shop/dry' } });
  t.false('dryRunDecision' in authorize([allow('real', one({ namespaces: [ex('shop')] }))], ctx({ name: '', policies: [], allowed: true, by: null, peer: 'A' })), 'absent without dry-run policies');
});

test(`truth table size is ${rows.length} rows`, (t) => {
  t.true(rows.length >= 80, `only ${rows.length} rows`);
});

test('decision messages follow ztunnel wording', (t) => {
  t.is(authorize([deny('d', one({ destinationPorts: [8080] }))], ctx({ name: '', policies: [], allowed: false, by: null })).why, 'explicitly denied by: shop/d');
  t.is(authorize([allow('a', [])], ctx({ name: '', policies: [], allowed: false, by: null })).why, 'allow policies exist, but none allowed');
  t.is(authorize([allow('a', [[]])], ctx({ name: '', policies: [], allowed: false, by: null })).why, 'allowed by: shop/a');
});

test('policyMatches ignores action and dry-run (used by explain)', (t) => {
  const c = ctx({ name: '', policies: [], allowed: true, by: null });
  t.true(policyMatches(deny('d', one({ destinationPorts: [8080] }), { dryRun: true }), c));
  t.false(policyMatches(allow('a', one({ destinationPorts: [1] })), c));
});

test('staticStrictPolicy has istiod\'s shape', (t) => {
  const p = staticStrictPolicy();
  t.like(p, { name: 'istio_converted_static_strict', namespace: 'istio-system', scope: 'WorkloadSelector', action: 'Deny', dryRun: false });
  t.deepEqual(p.rules[0]?.[0]?.[0]?.notPrincipals, [{ kind: 'Presence' }]);
});

test('cost: authorize against 20 policies stays in microseconds', (t) => {
  const policies: Authorization[] = [staticStrictPolicy()];
  for (let i = 0; i < 19; i++) {
    policies.push(allow(`p${i}`, [[[match({ principals: [ex(`cluster.local/ns/ns${i}/sa/sa${i}`)], sourceIps: [{ ip: `10.${i}.0.0`, prefixLen: 16 }] })], [match({ destinationPorts: [8000 + i] })]]]));
  }
  const c = ctx({ name: '', policies: [], allowed: false, by: null });
  const N = 50_000;
  const t0 = process.hrtime.bigint();
  let denied = 0;
  for (let i = 0; i < N; i++) if (!authorize(policies, c).allowed) denied++;
  const us = Number(process.hrtime.bigint() - t0) / 1000 / N;
  t.is(denied, N, 'no ALLOW matches identity A');
  t.log(`authorize (20 policies, full scan, deny): ${us.toFixed(2)} µs per connection`);
  t.true(us < 200);
});
