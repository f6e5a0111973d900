import type { YamlReader, YNode } from '../../state/config/yaml-reader';
import type { ObjectMeta } from '../config/types';
import { duration } from './schema-util';
import type { LocalRateLimit, RateLimitTarget } from './types';

export const RATE_LIMIT_API = 'traffic.ztunnel-ts.io/v1alpha1';

const TARGET_KINDS: Record<string, string> = { Service: '', HTTPRoute: 'gateway.networking.k8s.io', VirtualService: 'networking.istio.io' };

/**
 * Our LocalRateLimit (traffic.ztunnel-ts.io/v1alpha1), a local token bucket as Envoy's
 * local rate limit filter has it:
 *
 *     spec:
 *       targetRefs:                      # what it limits, each with its own bucket
 *       - { kind: Service, name: server }                       # every request to the Service
 *       - { group: gateway.networking.k8s.io, kind: HTTPRoute, name: r }
 *       - { group: networking.istio.io, kind: VirtualService, name: vs, sectionName: api }  # one named http route
 *       tokenBucket: { maxTokens: 10, tokensPerFill: 10, fillInterval: 1s }
 */
export function parseRateLimitSpec(r: YamlReader, node: YNode, path: string, meta: ObjectMeta): LocalRateLimit | undefined {
  const o = r.object(node, path, ['targetRefs', 'tokenBucket']);
  if (!o) return undefined;
  const targets = r.list(o.get('targetRefs'), o.at('targetRefs'), 'targetRefs', (n, p) => parseTarget(r, n, p, meta.namespace));
  if (r.isNull(o.get('targetRefs'))) r.error(o.get('targetRefs'), o.at('targetRefs'), 'at least one targetRef is required (kind Service, HTTPRoute or VirtualService)', node);
  const b = r.object(o.get('tokenBucket'), o.at('tokenBucket'), ['maxTokens', 'tokensPerFill', 'fillInterval']);
  if (!b) return undefined;
  const maxTokens = r.int(b.get('maxTokens'), b.at('maxTokens'), 1, 2 ** 31 - 1, 'a token count');
  const tokensPerFill = r.int(b.get('tokensPerFill'), b.at('tokensPerFill'), 1, 2 ** 31 - 1, 'a token count', maxTokens ?? 1);
  const fill = duration(r, b.get('fillInterval'), b.at('fillInterval'), 50);
  if (fill === null) r.error(b.get('fillInterval'), b.at('fillInterval'), 'fillInterval is required (at least 50ms)', b.node);
  if (maxTokens === undefined || tokensPerFill === undefined || !fill) return undefined;
  return { meta, targets, maxTokens, tokensPerFill, fillIntervalMs: fill };
}

function parseTarget(r: YamlReader, n: YNode, p: string, ns: string): RateLimitTarget | undefined {
  const o = r.object(n, p, ['group', 'kind', 'name', 'namespace', 'sectionName']);
  if (!o) return undefined;
  const kind = r.oneOf(o.get('kind'), o.at('kind'), ['Service', 'HTTPRoute', 'VirtualService'] as const);
  const group = r.string(o.get('group'), o.at('group'), { def: kind ? TARGET_KINDS[kind] : '' });
  const name = r.string(o.get('name'), o.at('name'), { required: true, owner: n });
  const namespace = r.string(o.get('namespace'), o.at('namespace'), { def: ns });
  const sectionName = r.isNull(o.get('sectionName')) ? null : r.string(o.get('sectionName'), o.at('sectionName'), { required: true });
  if (kind === undefined || group === undefined || name === undefined || namespace === undefined || sectionName === undefined) return undefined;
  if (group !== TARGET_KINDS[kind] && !(kind === 'Service' && group === 'core')) {
    r.error(o.get('group'), o.at('group'), `kind ${kind} is in group ${JSON.stringify(TARGET_KINDS[kind])}, not ${JSON.stringify(group)}`);
    return undefined;
  }
  if (sectionName !== null && kind !== 'VirtualService') {
    r.error(o.get('sectionName'), o.at('sectionName'), 'sectionName names an http route of a VirtualService; other kinds are limited as a whole');
    return undefined;
  }
  if (kind === 'Service') return { kind, name, namespace };
  return { kind, name, namespace, sectionName };
}
