import * as http from 'node:http';
import * as https from 'node:https';
import { createLocalJWKSet, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import type { Logger } from 'pino';
import { errorMessage, type Reason } from '../../errors';
import type { Clock } from '../../util/clock';
import type { JwtRule } from './types';

/** A JWKS document larger than this is refused (a key set is a few KiB). */
const MAX_BODY_BYTES = 1 << 20;
/** A token whose key id is unknown triggers a refetch at most this often per URI (key rotation). */
const UNKNOWN_KID_COOLDOWN_MS = 30_000;

export interface JwksStoreOptions {
  readonly logger: Logger;
  readonly clock: Clock;
  /** How often remote key sets are fetched again (istiod's PILOT_JWT_PUB_KEY_REFRESH_INTERVAL). */
  readonly refreshIntervalMs: number;
  /** Counts fetches by result (`ok`, `error`); optional. */
  readonly onFetch?: (uri: string, ok: boolean) => void;
}

/** One remote key set: the last good keys stay in force whatever later fetches do. */
interface RemoteSet {
  readonly uri: string;
  readonly discovery: boolean;
  timeoutMs: number;
  keys: JWTVerifyGetKey | null;
  kids: readonly string[];
  fetchedAtMs: number | null;
  lastAttemptMs: number;
  lastError: string | null;
  inFlight: Promise<void> | null;
  timer: NodeJS.Timeout | null;
}

/**
 * The key sets of the jwtRules in force. Inline `jwks` are parsed once per config; each
 * remote URI (`jwksUri`, or the `jwks_uri` of the issuer's OpenID configuration) is fetched
 * when a rule first names it, then every refresh interval, with the rule's timeout. A failed
 * fetch is logged and the last good keys stay; a token signed with an unknown key id causes
 * one early refetch (rate-limited), so key rotation needs no wait for the next refresh.
 * Until a URI's first fetch succeeds its tokens are refused (`Jwks_remote_fetch_is_failed`).
 */
export class JwksStore {
  private readonly remote = new Map<string, RemoteSet>();
  private readonly inline = new WeakMap<JSONWebKeySet, JWTVerifyGetKey>();
  private closed = false;

  constructor(private readonly o: JwksStoreOptions) {}

  /** Starts fetching every remote set the rules name and stops those no rule names any more. */
  sync(rules: readonly JwtRule[]): void {
    if (this.closed) return;
    const wanted = new Map<string, JwtRule>();
    for (const r of rules) if (r.keys.kind !== 'inline') wanted.set(r.keys.uri, r);
    for (const [uri, s] of this.remote) {
      if (wanted.has(uri)) continue;
      if (s.timer) clearTimeout(s.timer);
      this.remote.delete(uri);
    }
    for (const [uri, r] of wanted) {
      const cur = this.remote.get(uri);
      if (cur) {
        cur.timeoutMs = r.timeoutMs;
        continue;
      }
      const s: RemoteSet = { uri, discovery: r.keys.kind === 'discovery', timeoutMs: r.timeoutMs, keys: null, kids: [], fetchedAtMs: null, lastAttemptMs: 0, lastError: null, inFlight: null, timer: null };
      this.remote.set(uri, s);
      void this.fetch(s);
    }
  }

  /** The keys of a rule, waiting for a first fetch in progress; null when none were ever fetched. */
  async keysFor(rule: JwtRule): Promise<JWTVerifyGetKey | null> {
    const k = rule.keys;
    if (k.kind === 'inline') {
      let set = this.inline.get(k.jwks);
      if (!set) {
        set = createLocalJWKSet(k.jwks);
        this.inline.set(k.jwks, set);
      }
      return set;
    }
    const s = this.remote.get(k.uri);
    if (!s) return null;
    if (!s.keys) await (s.inFlight ?? this.fetch(s));
    return s.keys;
  }

  /** A token named a key id the set does not hold: refetch now unless one ran recently; true if new keys arrived. */
  async refreshForUnknownKey(rule: JwtRule): Promise<boolean> {
    if (rule.keys.kind === 'inline') return false;
    const s = this.remote.get(rule.keys.uri);
    if (!s) return false;
    const before = s.keys;
    if (s.inFlight) await s.inFlight;
    else if (this.o.clock.now() - s.lastAttemptMs >= Math.min(UNKNOWN_KID_COOLDOWN_MS, this.o.refreshIntervalMs)) await this.fetch(s);
    return s.keys !== before;
  }

  dump(): unknown {
    return [...this.remote.values()].map((s) => ({
      uri: s.uri,
      discovery: s.discovery,
      kids: s.kids,
      fetchedAt: s.fetchedAtMs === null ? null : new Date(s.fetchedAtMs).toISOString(),
      lastError: s.lastError,
    }));
  }

  close(): void {
    this.closed = true;
    for (const s of this.remote.values()) if (s.timer) clearTimeout(s.timer);
    this.remote.clear();
  }

  private fetch(s: RemoteSet): Promise<void> {
    if (s.inFlight) return s.inFlight;
    s.lastAttemptMs = this.o.clock.now();
    if (s.timer) clearTimeout(s.timer);
    s.timer = null;
    const p = this.load(s).then(
      (jwks) => {
        s.keys = createLocalJWKSet(jwks);
        s.kids = jwks.keys.map((k) => k.kid ?? '(no kid)');
        s.fetchedAtMs = this.o.clock.now();
        s.lastError = null;
        this.o.onFetch?.(s.uri, true);
        this.o.logger.debug({ uri: s.uri, kids: s.kids }, 'JWKS fetched');
      },
      (err: unknown) => {
        s.lastError = errorMessage(err);
        this.o.onFetch?.(s.uri, false);
        this.o.logger.warn({ reason: 'JWKS_FETCH' satisfies Reason, uri: s.uri, error: s.lastError, keptKeys: s.keys !== null }, s.keys ? 'JWKS fetch failed; the last good keys stay in force' : 'JWKS fetch failed; tokens of this issuer are refused until a fetch succeeds');
      },
    );
    s.inFlight = p.finally(() => {
      s.inFlight = null;
      if (!this.closed && this.remote.get(s.uri) === s) {
        s.timer = setTimeout(() => void this.fetch(s), this.o.refreshIntervalMs);
        s.timer.unref();
      }
    });
    return s.inFlight;
  }

  private async load(s: RemoteSet): Promise<JSONWebKeySet> {
    let uri = s.uri;
    if (s.discovery) {
      const doc = (await getJson(uri, s.timeoutMs)) as { jwks_uri?: unknown } | null;
      if (typeof doc?.jwks_uri !== 'string') throw new Error(`OpenID configuration at ${uri} has no jwks_uri`);
      uri = doc.jwks_uri;
    }
    const v = (await getJson(uri, s.timeoutMs)) as { keys?: unknown } | null;
    if (!Array.isArray(v?.keys) || !v.keys.every((k) => typeof k === 'object' && k !== null && typeof (k as { kty?: unknown }).kty === 'string')) {
      throw new Error(`${uri} did not return a JSON Web Key Set ({"keys": [...]})`);
    }
    return v as JSONWebKeySet;
  }
}

/** GET a JSON document over http(s) (certificates verified against the system roots), bounded in time and size. */
function getJson(uri: string, timeoutMs: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const u = new URL(uri);
    const mod = u.protocol === 'https:' ? https : u.protocol === 'http:' ? http : null;
    if (!mod) return reject(new Error(`${uri}: only https:// and http:// are supported`));
    const req = mod.get(u, { headers: { accept: 'application/json' }, timeout: timeoutMs }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return reject(new Error(`${uri} answered HTTP ${res.statusCode}`));
      }
      const chunks: Buffer[] = [];
      let n = 0;
      res.on('data', (c: Buffer) => {
        n += c.length;
        if (n > MAX_BODY_BYTES) req.destroy(new Error(`${uri}: document larger than ${MAX_BODY_BYTES} bytes`));
        else chunks.push(c);
      });
      res.on('end', () => {
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        } catch (err) {
          reject(new Error(`${uri}: not JSON: ${errorMessage(err)}`));
        }
      });
      res.on('error', reject);
    });
    // The timeout bounds the whole fetch, not only socket idleness.
    const deadline = setTimeout(() => req.destroy(new Error(`${uri}: no answer within ${timeoutMs}ms`)), timeoutMs);
    req.on('close', () => clearTimeout(deadline));
    req.on('timeout', () => req.destroy(new Error(`${uri}: no answer within ${timeoutMs}ms`)));
    req.on('error', reject);
  });
}
