import type { YamlReader, YNode } from '../../state/config/yaml-reader';
import { parseGatewayDuration } from '../config/meta';
import type { HttpRouteRetry } from '../config/types';

/**
 * Gateway API HTTPRoute rule `retry`: `attempts` (retries after the first try), `codes`
 * (HTTP statuses to retry, 400–599) and `backoff` (the base wait between tries).
 * Connection errors are retried whenever a retry stanza is present, as the spec asks.
 */
export function parseHttpRouteRetry(r: YamlReader, n: YNode, p: string): HttpRouteRetry | null | undefined {
  if (r.isNull(n)) return null;
  const o = r.object(n, p, ['attempts', 'codes', 'backoff']);
  if (!o) return undefined;
  const attempts = r.int(o.get('attempts'), o.at('attempts'), 0, 100, 'a number of retries', 2);
  const codes = r.list(o.get('codes'), o.at('codes'), 'HTTP status codes', (cn, cp) => r.int(cn, cp, 400, 599, 'an HTTP status from 400 to 599'));
  const backoffMs = parseGatewayDuration(r, o.get('backoff'), o.at('backoff'));
  if (attempts === undefined || backoffMs === undefined) return undefined;
  return { attempts, codes, backoffMs };
}
