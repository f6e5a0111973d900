import type { HeaderModifier, PathModifier, RouteFilter, RouteMatch } from '../config/types';

/** Headers as the proxy forwards them: lower-case names, one string or a list per name. */
export type HeaderBag = Record<string, string | string[]>;

/**
 * RequestHeaderModifier / ResponseHeaderModifier: `set` replaces, `add` appends a value,
 * `remove` deletes; applied in that order (Gateway API), in place.
 */
export function applyHeaderModifier(h: HeaderBag, m: HeaderModifier): void {
  for (const s of m.set) h[s.name] = s.value;
  for (const a of m.add) {
    const cur = h[a.name];
    h[a.name] = cur === undefined ? a.value : Array.isArray(cur) ? [...cur, a.value] : [cur, a.value];
  }
  for (const r of m.remove) delete h[r];
}

/** The path after a ReplaceFullPath / ReplacePrefixMatch modifier, given the match that selected the rule. */
export function modifyPath(path: string, mod: PathModifier, match: RouteMatch): string {
  if (mod.type === 'ReplaceFullPath') return mod.value;
  const prefix = match.path.type === 'PathPrefix' ? match.path.value : '/';
  const rest = prefix === '/' ? path.slice(1) : path.slice(prefix.length).replace(/^\//, '');
  const base = mod.value.endsWith('/') ? mod.value.slice(0, -1) : mod.value;
  if (rest === '') return base === '' ? '/' : base;
  return `${base}/${rest}`;
}

const DEFAULT_PORT = { http: 80, https: 443 } as const;

/**
 * The Location of a RequestRedirect: scheme, hostname, port and path replaced as
 * configured; the query is kept. The port is omitted when it is the scheme's default.
 */
export function redirectLocation(
  f: Extract<RouteFilter, { type: 'RequestRedirect' }>,
  req: { readonly host: string; readonly path: string; readonly query: string; readonly scheme: 'http' | 'https' },
  match: RouteMatch,
): string {
  const scheme = f.scheme ?? req.scheme;
  const { host, port: reqPort } = splitHost(req.host);
  const hostname = f.hostname ?? host;
  // Gateway API: without a port, a redirect that sets the scheme uses that scheme's well-known
  // port; otherwise the request's port is kept.
  const port = f.port ?? (f.scheme !== null ? DEFAULT_PORT[scheme] : (reqPort ?? DEFAULT_PORT[scheme]));
  const path = f.path ? modifyPath(req.path, f.path, match) : req.path;
  const portPart = port === DEFAULT_PORT[scheme] ? '' : `:${port}`;
  return `${scheme}://${hostname}${portPart}${path}${req.query ? `?${req.query}` : ''}`;
}

/** Host header → host and optional port (`[v6]:port` aware). */
export function splitHost(h: string): { host: string; port: number | null } {
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(h);
  if (!m) return { host: h, port: null };
  return { host: m[1] as string, port: m[2] !== undefined ? Number(m[2]) : null };
}
