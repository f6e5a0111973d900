import { createServer, type Server } from 'node:http';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';

/**
 * The waypoint bench's request-identity and tracing rows: each feature gets its own waypoint
 * process (same build, same route, same app) bound to its own Service, so every row pays
 * the same proxy hops and differs only in the feature:
 *  - `wp-jwt-optional`: a RequestAuthentication (ES256, inline JWKS) applies, requests carry
 *    no token: the cost of JWT enabled but not triggered;
 *  - `wp-jwt-verified`: the same with a valid token on every request (signature checked each time);
 *  - `wp-tracing`: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT set, TRACING_SAMPLING=100: every request
 *    makes a span exported over OTLP/HTTP to a sink in this process (the worst case).
 */
export interface FeatureWaypoint {
  /** Row name in the results. */
  readonly row: string;
  /** Waypoint (Gateway) name, Service name, host index of its pod IP and of its Service VIP. */
  readonly name: string;
  readonly service: string;
  readonly ipHost: number;
  readonly vipHost: number;
  readonly config: readonly Record<string, unknown>[];
  readonly env: Readonly<Record<string, string>>;
  /** Request headers of the row's load. */
  readonly headers: Readonly<Record<string, string>>;
}

export interface RequestIdentityRows {
  readonly waypoints: readonly FeatureWaypoint[];
  /** Spans the OTLP sink received (to show tracing really exported). */
  spansReceived(): number;
  close(): void;
}

const ISSUER = 'https://issuer.bench.example';

export async function requestIdentityRows(sinkHost: string, l7For: (service: string) => readonly Record<string, unknown>[]): Promise<RequestIdentityRows> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'bench-1', alg: 'ES256' };
  const token = await new SignJWT({ sub: 'bench-user', aud: 'reviews' }).setProtectedHeader({ alg: 'ES256', kid: 'bench-1' }).setIssuer(ISSUER).setIssuedAt().setExpirationTime('2h').sign(privateKey);
  const ra = (service: string): Record<string, unknown> => ({
    apiVersion: 'security.istio.io/v1',
    kind: 'RequestAuthentication',
    metadata: { name: `jwt-${service}`, namespace: 'bench' },
    spec: { targetRefs: [{ group: '', kind: 'Service', name: service }], jwtRules: [{ issuer: ISSUER, audiences: ['reviews'], jwks: JSON.stringify({ keys: [jwk] }), outputClaimToHeaders: [{ header: 'x-user', claim: 'sub' }] }] },
  });
  let spans = 0;
  const sink: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      // Count the spans without keeping them: the sink must not be the bottleneck.
      spans += body.split('"spanId"').length - 1;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((r) => sink.listen(0, sinkHost, r));
  const sinkUrl = `http://${sinkHost}:${(sink.address() as { port: number }).port}/v1/traces`;
  return {
    waypoints: [
      { row: 'wp-jwt-optional', name: 'wp-jwt-opt', service: 'reviews-jwt-opt', ipHost: 31, vipHost: 111, config: [...l7For('reviews-jwt-opt'), ra('reviews-jwt-opt')], env: {}, headers: {} },
      { row: 'wp-jwt-verified', name: 'wp-jwt-ver', service: 'reviews-jwt-ver', ipHost: 32, vipHost: 112, config: [...l7For('reviews-jwt-ver'), ra('reviews-jwt-ver')], env: {}, headers: { authorization: `Bearer ${token}` } },
      { row: 'wp-tracing', name: 'wp-trace', service: 'reviews-trace', ipHost: 33, vipHost: 113, config: l7For('reviews-trace'), env: { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: sinkUrl, TRACING_SAMPLING: '100', OTEL_BSP_SCHEDULE_DELAY: '1000' }, headers: {} },
    ],
    spansReceived: () => spans,
    close: () => sink.close(),
  };
}
