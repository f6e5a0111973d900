import test from 'ava';
import * as http from 'node:http';
import { connect } from 'node:net';
import { SignJWT, exportJWK, generateKeyPair, type JWK, type JWTPayload } from 'jose';
import { WaypointMesh, get, startHttpApp } from './harness';
import { waitUntil } from '../../helpers/node-harness';
import { sumSamples } from '../../helpers/prom-text';
import type { SocketAddr } from '../../../src/util/socket-addr';

/**
 * RequestAuthentication end to end (client → node-a → waypoint → node-b → app): tokens
 * signed with real RS256 / ES256 / EdDSA keys, inline JWKS and a jwksUri served over
 * HTTP on loopback (rotated and failing on command), token locations, output headers,
 * and request principals / claims in L7 authorization.
 */
const m = new WaypointMesh();
let fwd: SocketAddr;
type Key = { priv: Parameters<SignJWT['sign']>[0]; jwk: JWK; alg: string };
const keys: Record<string, Key> = {};
/** What the JWKS server answers: its keys, or an HTTP error status. */
const jwksServer = { keys: [] as JWK[], status: 200, hits: 0 };
let jwksUrl = '';

async function key(kid: string, alg: string): Promise<Key> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}) });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { priv: privateKey, jwk, alg };
}

async function token(k: Key, claims: JWTPayload, opts: { exp?: string | number; nbf?: number } = {}): Promise<string> {
  let j = new SignJWT(claims).setProtectedHeader({ alg: k.alg, kid: k.jwk.kid as string, typ: 'JWT' }).setIssuedAt();
  j = j.setExpirationTime(opts.exp ?? '10m');
  if (opts.nbf !== undefined) j = j.setNotBefore(opts.nbf);
  return j.sign(k.priv);
}

const RA = (extra = ''): string => `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: { name: jwt, namespace: default }
spec:
  targetRefs: [{ group: "", kind: Service, name: server }]
  jwtRules:
  - issuer: https://issuer.example
    audiences: [server.default]
    jwks: '${JSON.stringify({ keys: [keys['rs']!.jwk] })}'
    outputPayloadToHeader: x-jwt-payload
    outputClaimToHeaders: [{ header: x-jwt-sub, claim: sub }, { header: x-jwt-tier, claim: plan.tier }]
  - issuer: https://rotating.example
    jwksUri: JWKS_URL
    fromHeaders: [{ name: x-token, prefix: "Token " }]
    fromParams: [tok]
    fromCookies: [session]
    forwardOriginalToken: true
${extra}`;

async function apply(yaml: string): Promise<void> {
  const before = m.wpLogs.find((l) => l['msg'] === 'waypoint config applied').length;
  m.writeL7(yaml.replace(/JWKS_URL/g, jwksUrl));
  await waitUntil(
    () => m.wpLogs.find((l) => l['msg'] === 'waypoint config applied').length > before,
    5000,
    () => `waypoint config applied; ${JSON.stringify(m.wpLogs.find((l) => l['reason'] === 'CONFIG_INVALID').at(-1)?.['errors'] ?? []).slice(0, 300)}`,
  );
}

test.before(async () => {
  keys['rs'] = await key('rs-1', 'RS256');
  keys['rsOther'] = await key('rs-1', 'RS256'); // same kid, another key: a forged signature
  keys['es'] = await key('es-1', 'ES256');
  keys['ed'] = await key('ed-1', 'EdDSA');
  keys['es2'] = await key('es-2', 'ES256');
  jwksServer.keys = [keys['es']!.jwk, keys['ed']!.jwk];
  const js = http.createServer((req, res) => {
    jwksServer.hits++;
    if (jwksServer.status !== 200) {
      res.writeHead(jwksServer.status);
      res.end('unavailable');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys: jwksServer.keys }));
  });
  await new Promise<void>((r) => js.listen(0, '127.0.0.1', r));
  m.track(js);
  jwksUrl = `http://127.0.0.1:${(js.address() as { port: number }).port}/jwks.json`;
  const v1 = await startHttpApp(m.V1, 8080, 'v1');
  const v2 = await startHttpApp(m.V2, 8080, 'v2');
  m.track(v1);
  m.track(v2);
  await m.start('', { PILOT_JWT_PUB_KEY_REFRESH_INTERVAL: '1s' });
  await apply(RA());
  fwd = await m.forwarder({ host: m.VIP, port: 80 });
});

test.after.always(() => m.close());

const bearer = (t: string): Record<string, string> => ({ authorization: `Bearer ${t}` });

test.serial('RS256 inline JWKS: a valid token passes, is removed upstream, and its payload and claims become headers', async (t) => {
  const tok = await token(keys['rs']!, { iss: 'https://issuer.example', sub: 'alice', aud: 'server.default', plan: { tier: 'gold' } });
  const r = await get(fwd, '/ok', { ...bearer(tok), 'x-jwt-sub': 'spoofed' });
  t.is(r.status, 200);
  t.is(r.body.headers['authorization'], undefined, 'forwardOriginalToken false: the token is not forwarded');
  t.is(r.body.headers['x-jwt-sub'], 'alice', 'the claim header comes from the token, never from the client');
  t.is(r.body.headers['x-jwt-tier'], 'gold', 'nested claim by dotted path');
  t.deepEqual(JSON.parse(Buffer.from(r.body.headers['x-jwt-payload'], 'base64url').toString()).sub, 'alice');
  const spoof = await get(fwd, '/none', { 'x-jwt-sub': 'mallory', 'x-jwt-payload': 'e30' });
  t.is(spoof.status, 200, 'no token and no policy requiring one: the request passes');
  t.is(spoof.body.headers['x-jwt-sub'], undefined, 'a client cannot send an output header itself');
  t.is(spoof.body.headers['x-jwt-payload'], undefined);
  await waitUntil(() => m.requestLogs().some((l) => l['path'] === '/ok'), 5000, () => 'log');
  t.like(m.requestLogs().find((l) => l['path'] === '/ok'), { response_code: 200, 'jwt.rule': 'default/jwt#0', 'request.principal': 'https://issuer.example/alice' });
});

test.serial('refused tokens → 401 with the reason: expired, not yet valid, wrong issuer, wrong audience, bad signature, garbage', async (t) => {
  const rs = keys['rs']!;
  const base = { iss: 'https://issuer.example', sub: 'alice', aud: 'server.default' };
  const now = Math.floor(Date.now() / 1000);
  const cases: [string, string, string][] = [
    ['expired', await token(rs, base, { exp: now - 120 }), 'Jwt is expired'],
    ['future', await token(rs, base, { nbf: now + 600 }), 'Jwt not yet valid'],
    ['issuer', await token(rs, { ...base, iss: 'https://evil.example' }), 'Jwt issuer is not configured'],
    ['audience', await token(rs, { ...base, aud: 'other' }), 'Audiences in Jwt are not allowed'],
    ['signature', await token(keys['rsOther']!, base), 'Jwt verification fails'],
    ['garbage', 'not.a.jwt', 'Jwt is not in the form of Header.Payload.Signature'],
  ];
  for (const [name, tok, body] of cases) {
    const r = await get(fwd, `/bad-${name}`, bearer(tok));
    t.is(r.status, 401, name);
    t.is(r.text, body, name);
    t.regex(String(r.headers['www-authenticate']), /^Bearer realm="http:\/\/server\.default\.svc\.cluster\.local\/bad-/, name);
  }
  await waitUntil(() => m.requestLogs().some((l) => l['path'] === '/bad-garbage'), 5000, () => 'log');
  t.like(m.requestLogs().find((l) => l['path'] === '/bad-expired'), { response_code: 401, reason: 'JWT_INVALID', 'jwt.rule': 'default/jwt#0', 'jwt.failure': 'Jwt_is_expired', response_code_details: 'jwt_authn_access_denied{Jwt_is_expired}' });
  t.like(m.requestLogs().find((l) => l['path'] === '/bad-issuer'), { 'jwt.failure': 'Jwt_issuer_is_not_configured' });
  const metrics = await m.wpMetrics();
  t.true(sumSamples(metrics, 'ztunnel_ts_jwt_authn_total', { result: 'Jwt_is_expired' }) >= 1);
});

test.serial('jwksUri (ES256, EdDSA) with fromHeaders prefix and fromParams; forwardOriginalToken keeps the token', async (t) => {
  const claims = { iss: 'https://rotating.example', sub: 'bob' };
  const es = await token(keys['es']!, claims);
  const ed = await token(keys['ed']!, claims);
  const h = await get(fwd, '/es', { 'x-token': `Token ${es}` });
  t.is(h.status, 200);
  t.is(h.body.headers['x-token'], `Token ${es}`, 'forwardOriginalToken: true');
  t.is((await get(fwd, `/ed?tok=${ed}`)).status, 200, 'EdDSA from the query parameter');
  const fromCookie = await get(fwd, '/ed-cookie', { cookie: `theme=dark; session=${ed}` });
  t.is(fromCookie.status, 200, 'EdDSA from the session cookie');
  t.is((await get(fwd, '/bad-cookie', { cookie: `session=${ed}x` })).status, 401, 'a bad signature in the cookie is refused');
  t.is((await get(fwd, '/es-wrong-prefix', { 'x-token': `Bearer ${es}` })).status, 200, 'a header without the prefix holds no token: passes without a principal');
  t.is((await get(fwd, '/es-in-bearer', bearer(es))).status, 401, 'the rule does not read Authorization: that issuer is not configured there');
});

test.serial('JWKS rotation via jwksUri: a new key id is fetched; a failing JWKS server keeps the last good keys', async (t) => {
  const claims = { iss: 'https://rotating.example', sub: 'carol' };
  const fresh = await token(keys['es2']!, claims);
  const hitsBefore = jwksServer.hits;
  jwksServer.keys = [keys['es2']!.jwk];
  // The unknown kid triggers a refetch (rate-limited to the 1 s refresh interval here).
  // An unknown kid triggers a refetch, at most once per cooldown (here the 1 s refresh interval).
  const started = Date.now();
  let status = 0;
  while (Date.now() - started < 5000 && (status = (await get(fwd, '/rotated', { 'x-token': `Token ${fresh}` })).status) !== 200) await new Promise((r) => setTimeout(r, 100));
  t.is(status, 200, 'the rotated key set was fetched');
  t.true(jwksServer.hits > hitsBefore);
  jwksServer.status = 503;
  const failures = m.wpLogs.find((l) => l['msg'] === 'JWKS fetch failed; the last good keys stay in force').length;
  await waitUntil(() => m.wpLogs.find((l) => l['msg'] === 'JWKS fetch failed; the last good keys stay in force').length > failures, 5000, () => 'a failed refresh');
  t.is((await get(fwd, '/still', { 'x-token': `Token ${fresh}` })).status, 200, 'last good keys stay in force');
  const old = await token(keys['es']!, claims);
  t.is((await get(fwd, '/removed', { 'x-token': `Token ${old}` })).status, 401, 'a key removed by rotation is refused');
  t.like(m.wpLogs.find((l) => l['reason'] === 'JWKS_FETCH').at(-1), { uri: jwksUrl, keptKeys: true });
  jwksServer.status = 200;
  const metrics = await m.wpMetrics();
  t.true(sumSamples(metrics, 'ztunnel_ts_jwks_fetches_total', { result: 'error' }) >= 1);
});

test.serial('requestPrincipals and request.auth.* conditions in the authorization truth table', async (t) => {
  await apply(
    RA(`---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: require-jwt, namespace: default }
spec:
  targetRefs: [{ group: "", kind: Service, name: server }]
  action: ALLOW
  rules:
  - from: [{ source: { requestPrincipals: ["https://issuer.example/*"], notRequestPrincipals: ["https://issuer.example/banned"] } }]
    to: [{ operation: { paths: ["/user*"] } }]
  - to: [{ operation: { paths: ["/admin*"] } }]
    when:
    - { key: "request.auth.claims[groups]", values: ["admin"] }
    - { key: "request.auth.claims[realm][role]", values: ["ops*"] }
  - to: [{ operation: { paths: ["/aud*"] } }]
    when:
    - { key: request.auth.audiences, values: ["server.default"] }
    - { key: request.auth.presenter, values: ["web-app"] }
    - { key: request.auth.principal, notValues: ["*/eve"] }
  - to: [{ operation: { paths: ["/public*"] } }]
`),
  );
  const rs = keys['rs']!;
  const base = { iss: 'https://issuer.example', aud: 'server.default' };
  const tok = async (c: JWTPayload): Promise<Record<string, string>> => bearer(await token(rs, { ...base, ...c }));
  const rows: [string, string, Record<string, string>, number][] = [
    ['no token, principal required', '/user', {}, 403],
    ['valid principal', '/user', await tok({ sub: 'alice' }), 200],
    ['notRequestPrincipals', '/user', await tok({ sub: 'banned' }), 403],
    ['no token, public', '/public', {}, 200],
    ['groups list has admin and nested role matches prefix', '/admin', await tok({ sub: 'a', groups: ['dev', 'admin'], realm: { role: 'ops-lead' } }), 200],
    ['groups without admin', '/admin', await tok({ sub: 'a', groups: ['dev'], realm: { role: 'ops' } }), 403],
    ['nested claim missing', '/admin', await tok({ sub: 'a', groups: ['admin'] }), 403],
    ['groups as a string', '/admin', await tok({ sub: 'a', groups: 'admin', realm: { role: 'ops' } }), 200],
    ['no token for claims', '/admin', {}, 403],
    ['audience + presenter', '/aud', await tok({ sub: 'a', azp: 'web-app' }), 200],
    ['wrong presenter', '/aud', await tok({ sub: 'a', azp: 'cli' }), 403],
    ['principal notValues', '/aud', await tok({ sub: 'eve', azp: 'web-app' }), 403],
    ['invalid token is 401 before authorization', '/public', bearer('x.y.z'), 401],
  ];
  for (const [name, path, headers, want] of rows) t.is((await get(fwd, path, headers)).status, want, name);
});

test.serial('/debug/explain names the jwtRule, the result and the principal authorization sees', async (t) => {
  const admin = m.wp.runtime.currentAddresses().admin!;
  const explain = async (q: string): Promise<any> => JSON.parse((await get({ ip: admin.ip, port: admin.port, family: 4 }, `/debug/explain?dst=${m.VIP}:80&${q}`)).text);
  const tok = await token(keys['rs']!, { iss: 'https://issuer.example', sub: 'alice', aud: 'server.default' });
  const ok = await explain(`path=/user&header=${encodeURIComponent(`authorization:Bearer ${tok}`)}`);
  t.like(ok.authentication, { rule: 'default/jwt#0', result: 'verified', requestPrincipal: 'https://issuer.example/alice' });
  t.like(ok.authorization, { allowed: true, policy: 'default/require-jwt' });
  const expired = await token(keys['rs']!, { iss: 'https://issuer.example', sub: 'alice', aud: 'server.default' }, { exp: Math.floor(Date.now() / 1000) - 300 });
  const bad = await explain(`path=/user&header=${encodeURIComponent(`authorization:Bearer ${expired}`)}`);
  t.like(bad, { outcome: 'unauthenticated', authentication: { rule: 'default/jwt#0', result: 'refused', failure: 'Jwt_is_expired' }, response: { status: 401, body: 'Jwt is expired' } });
  const none = await explain('path=/user');
  t.like(none, { authorization: { allowed: false } });
  t.regex(none.authentication.result, /^no token/);
  const dump = JSON.parse((await get({ ip: admin.ip, port: admin.port, family: 4 }, '/config_dump')).text);
  t.is(dump.l7.requestAuthentications[0].name, 'default/jwt');
});

/** Sends an HTTP/1.1 upgrade request through the mesh and returns the status line's code. */
function upgradeStatus(path: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = connect(fwd.port, fwd.ip, () => {
      const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
      s.write(`GET ${path} HTTP/1.1\r\nhost: server.default.svc.cluster.local\r\nconnection: Upgrade\r\nupgrade: websocket\r\n${extra}\r\n`);
    });
    let buf = '';
    s.setEncoding('utf8');
    s.on('data', (c: string) => {
      buf += c;
      const m = /^HTTP\/1\.1 (\d{3})/.exec(buf);
      if (m) {
        s.destroy();
        resolve(Number(m[1]));
      }
    });
    s.on('error', reject);
  });
}

test.serial('upgrades (WebSocket) are authenticated like any request: refused token 401, principal required 403, verified 101', async (t) => {
  const tok = await token(keys['rs']!, { iss: 'https://issuer.example', sub: 'alice', aud: 'server.default' });
  t.is(await upgradeStatus('/user/ws', bearer('x.y.z')), 401);
  t.is(await upgradeStatus('/user/ws', {}), 403, 'require-jwt: no principal');
  t.is(await upgradeStatus('/user/ws', bearer(tok)), 101);
});
