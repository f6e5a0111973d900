import test from 'ava';
import { parseL7Config } from '../../../src/waypoint/config/parse';
import type { L7Policy } from '../../../src/waypoint/config/types';
import { authorizeRequest, policiesFor } from '../../../src/waypoint/l7/authz';
import type { L7Peer, L7Request } from '../../../src/waypoint/l7/request';

/**
 * L7 authorization truth table: every source, operation and condition field and its not
 * form, each against a request it must match and one it must not, for ALLOW (the field
 * decides allow vs deny) — plus action semantics (DENY before ALLOW, no ALLOW = allow,
 * AUDIT never decides, empty rules). Policies are written as users write them.
 */

function policy(spec: string, name = 'p', action = 'ALLOW'): L7Policy {
  const text = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: ${name}, namespace: shop }
spec:
  targetRefs: [{ kind: Gateway, group: gateway.networking.k8s.io, name: waypoint }]
  action: ${action}
${spec}`;
  const r = parseL7Config([{ text, source: 't.yaml' }]);
  if (!r.ok) throw new Error(r.errors.map((e) => `${e.line}:${e.column} ${e.message}`).join('\n'));
  return r.value.policies[0]!;
}

const BASE_REQ: L7Request = { method: 'GET', path: '/api/items', query: 'x=1', host: 'reviews.shop.svc.cluster.local:9080', headers: { 'x-user': 'alice', 'x-tier': 'gold' } };
const BASE_PEER: L7Peer = {
  sourceIp: '10.1.0.5',
  remoteIp: '192.168.7.7',
  principal: 'cluster.local/ns/shop/sa/client',
  namespace: 'shop',
  destinationIp: '10.96.0.10',
  destinationPort: 9080,
};
const PLAIN: Partial<L7Peer> = { principal: '', namespace: '' };

interface Row {
  readonly name: string;
  /** YAML of one rule (indented under `rules:`). */
  readonly rule: string;
  readonly req?: Partial<L7Request>;
  readonly peer?: Partial<L7Peer>;
  readonly matches: boolean;
}

const src = (f: string): string => `  - from: [{ source: { ${f} } }]`;
const op = (f: string): string => `  - to: [{ operation: { ${f} } }]`;
const when = (f: string): string => `  - when: [{ ${f} }]`;

const ROWS: Row[] = [
  { name: 'principals exact', rule: src('principals: ["cluster.local/ns/shop/sa/client"]'), matches: true },
  { name: 'principals exact (other)', rule: src('principals: ["cluster.local/ns/shop/sa/other"]'), matches: false },
  { name: 'principals prefix', rule: src('principals: ["cluster.local/ns/shop/*"]'), matches: true },
  { name: 'principals suffix', rule: src('principals: ["*/sa/client"]'), matches: true },
  { name: 'principals presence', rule: src('principals: ["*"]'), matches: true },
  { name: 'principals presence (plaintext)', rule: src('principals: ["*"]'), peer: PLAIN, matches: false },
  { name: 'notPrincipals', rule: src('notPrincipals: ["cluster.local/ns/shop/sa/client"]'), matches: false },
  { name: 'notPrincipals (other)', rule: src('notPrincipals: ["*/sa/admin"]'), matches: true },
  { name: 'notPrincipals presence (plaintext)', rule: src('notPrincipals: ["*"]'), peer: PLAIN, matches: true },
  { name: 'namespaces', rule: src('namespaces: ["shop"]'), matches: true },
  { name: 'namespaces (other)', rule: src('namespaces: ["ops"]'), matches: false },
  { name: 'notNamespaces', rule: src('notNamespaces: ["shop"]'), matches: false },
  { name: 'notNamespaces (other)', rule: src('notNamespaces: ["ops"]'), matches: true },
  { name: 'ipBlocks', rule: src('ipBlocks: ["10.1.0.0/16"]'), matches: true },
  { name: 'ipBlocks (outside)', rule: src('ipBlocks: ["10.2.0.0/16"]'), matches: false },
  { name: 'notIpBlocks', rule: src('notIpBlocks: ["10.1.0.5"]'), matches: false },
  { name: 'notIpBlocks (outside)', rule: src('notIpBlocks: ["10.2.0.0/16"]'), matches: true },
  { name: 'remoteIpBlocks', rule: src('remoteIpBlocks: ["192.168.0.0/16"]'), matches: true },
  { name: 'remoteIpBlocks (source IP does not count)', rule: src('remoteIpBlocks: ["10.1.0.0/16"]'), matches: false },
  { name: 'notRemoteIpBlocks', rule: src('notRemoteIpBlocks: ["192.168.7.7/32"]'), matches: false },
  { name: 'notRemoteIpBlocks (outside)', rule: src('notRemoteIpBlocks: ["10.0.0.0/8"]'), matches: true },
  { name: 'source fields are ANDed', rule: src('namespaces: ["shop"], ipBlocks: ["10.2.0.0/16"]'), matches: false },
  { name: 'hosts (case-insensitive, port ignored)', rule: op('hosts: ["Reviews.shop.svc.cluster.local"]'), matches: true },
  { name: 'hosts suffix', rule: op('hosts: ["*.cluster.local"]'), matches: true },
  { name: 'hosts (other)', rule: op('hosts: ["ratings.shop.svc.cluster.local"]'), matches: false },
  { name: 'notHosts', rule: op('notHosts: ["reviews.*"]'), matches: false },
  { name: 'notHosts (other)', rule: op('notHosts: ["ratings.*"]'), matches: true },
  { name: 'ports', rule: op('ports: [9080]'), matches: true },
  { name: 'ports (other)', rule: op('ports: [80]'), matches: false },
  { name: 'notPorts', rule: op('notPorts: [9080]'), matches: false },
  { name: 'notPorts (other)', rule: op('notPorts: [80]'), matches: true },
  { name: 'methods', rule: op('methods: ["GET", "HEAD"]'), matches: true },
  { name: 'methods (other)', rule: op('methods: ["POST"]'), matches: false },
  { name: 'notMethods', rule: op('notMethods: ["GET"]'), matches: false },
  { name: 'notMethods (other)', rule: op('notMethods: ["DELETE"]'), matches: true },
  { name: 'paths exact (query excluded)', rule: op('paths: ["/api/items"]'), matches: true },
  { name: 'paths prefix', rule: op('paths: ["/api/*"]'), matches: true },
  { name: 'paths suffix', rule: op('paths: ["*/items"]'), matches: true },
  { name: 'paths presence', rule: op('paths: ["*"]'), matches: true },
  { name: 'paths (other)', rule: op('paths: ["/admin*"]'), matches: false },
  { name: 'notPaths', rule: op('notPaths: ["/api/*"]'), matches: false },
  { name: 'notPaths (other)', rule: op('notPaths: ["/admin*"]'), matches: true },
  { name: 'when request.headers', rule: when('key: "request.headers[X-User]", values: ["alice", "bob"]'), matches: true },
  { name: 'when request.headers prefix', rule: when('key: "request.headers[x-tier]", values: ["go*"]'), matches: true },
  { name: 'when request.headers (absent header)', rule: when('key: "request.headers[x-none]", values: ["*"]'), matches: false },
  { name: 'when request.headers notValues', rule: when('key: "request.headers[x-user]", notValues: ["alice"]'), matches: false },
  { name: 'when request.headers notValues (absent header)', rule: when('key: "request.headers[x-none]", notValues: ["*"]'), matches: true },
  { name: 'when source.ip', rule: when('key: source.ip, values: ["10.1.0.0/24"]'), matches: true },
  { name: 'when source.ip notValues', rule: when('key: source.ip, notValues: ["10.1.0.5"]'), matches: false },
  { name: 'when remote.ip', rule: when('key: remote.ip, values: ["192.168.7.7"]'), matches: true },
  { name: 'when remote.ip notValues', rule: when('key: remote.ip, notValues: ["192.168.0.0/16"]'), matches: false },
  { name: 'when destination.ip', rule: when('key: destination.ip, values: ["10.96.0.0/12"]'), matches: true },
  { name: 'when destination.ip notValues', rule: when('key: destination.ip, notValues: ["10.96.0.10"]'), matches: false },
  { name: 'when destination.port', rule: when('key: destination.port, values: ["9080"]'), matches: true },
  { name: 'when destination.port notValues', rule: when('key: destination.port, notValues: ["9080"]'), matches: false },
  { name: 'when source.namespace', rule: when('key: source.namespace, values: ["shop"]'), matches: true },
  { name: 'when source.namespace notValues', rule: when('key: source.namespace, notValues: ["shop"]'), matches: false },
  { name: 'when source.principal', rule: when('key: source.principal, values: ["*/sa/client"]'), matches: true },
  { name: 'when source.principal notValues', rule: when('key: source.principal, notValues: ["*"]'), matches: false },
  { name: 'when values and notValues both hold', rule: when('key: "request.headers[x-user]", values: ["a*"], notValues: ["admin"]'), matches: true },
  { name: 'from, to and when are ANDed', rule: '  - from: [{ source: { namespaces: ["shop"] } }]\n    to: [{ operation: { methods: ["POST"] } }]', matches: false },
  { name: 'from entries are ORed', rule: '  - from: [{ source: { namespaces: ["ops"] } }, { source: { namespaces: ["shop"] } }]', matches: true },
  { name: 'an empty rule matches everything', rule: '  - {}', matches: true },
];

for (const row of ROWS) {
  test(`ALLOW ${row.name}`, (t) => {
    const p = policy(`  rules:\n${row.rule}\n`);
    const d = authorizeRequest([p], { ...BASE_REQ, ...row.req }, { ...BASE_PEER, ...row.peer });
    t.is(d.allowed, row.matches);
    t.is(d.policy, row.matches ? 'shop/p' : null);
  });
  test(`DENY ${row.name}`, (t) => {
    const p = policy(`  rules:\n${row.rule}\n`, 'p', 'DENY');
    const d = authorizeRequest([p], { ...BASE_REQ, ...row.req }, { ...BASE_PEER, ...row.peer });
    t.is(d.allowed, !row.matches);
  });
}

test('actions: DENY beats ALLOW, no ALLOW = allow, ALLOW present but unmatched = deny, AUDIT never decides', (t) => {
  const allowAll = policy('  rules: [{}]', 'allow-all');
  const allowNothing = policy('', 'allow-nothing');
  const denyAdmin = policy('  rules: [{ to: [{ operation: { paths: ["/admin*"] } }] }]', 'deny-admin', 'DENY');
  const auditAll = policy('  rules: [{}]', 'audit-all', 'AUDIT');
  const admin = { ...BASE_REQ, path: '/admin/users' };
  t.like(authorizeRequest([allowAll, denyAdmin], admin, BASE_PEER), { allowed: false, policy: 'shop/deny-admin' });
  t.like(authorizeRequest([allowAll, denyAdmin], BASE_REQ, BASE_PEER), { allowed: true, policy: 'shop/allow-all' });
  t.like(authorizeRequest([denyAdmin], BASE_REQ, BASE_PEER), { allowed: true, policy: null, why: 'no ALLOW policy applies' });
  t.like(authorizeRequest([allowNothing], BASE_REQ, BASE_PEER), { allowed: false, policy: null, why: 'ALLOW policies apply but none matched' });
  const audited = authorizeRequest([auditAll], BASE_REQ, BASE_PEER);
  t.like(audited, { allowed: true, policy: null });
  t.deepEqual(audited.audited, ['shop/audit-all']);
  t.like(authorizeRequest([auditAll, allowNothing], BASE_REQ, BASE_PEER), { allowed: false });
  t.like(authorizeRequest([policy('', 'deny-no-rules', 'DENY')], BASE_REQ, BASE_PEER), { allowed: true }, 'a DENY without rules denies nothing');
});

test('policiesFor: attached to this waypoint or to the destination Service only', (t) => {
  const onWp = policy('  rules: [{}]', 'on-wp');
  const svcText = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: on-svc, namespace: shop }
spec:
  targetRefs: [{ kind: Service, group: "", name: reviews }]
`;
  const r = parseL7Config([{ text: svcText, source: 't' }]);
  if (!r.ok) return t.fail();
  const onSvc = r.value.policies[0]!;
  const all = [onWp, onSvc];
  t.deepEqual(policiesFor(all, { name: 'reviews', namespace: 'shop' }, { name: 'waypoint', namespace: 'shop' }).map((p) => p.meta.name), ['on-wp', 'on-svc']);
  t.deepEqual(policiesFor(all, { name: 'ratings', namespace: 'shop' }, { name: 'waypoint', namespace: 'shop' }).map((p) => p.meta.name), ['on-wp']);
  t.deepEqual(policiesFor(all, { name: 'reviews', namespace: 'shop' }, { name: 'other', namespace: 'shop' }).map((p) => p.meta.name), ['on-svc']);
});
