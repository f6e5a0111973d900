import type { YamlReader, YNode } from '../../state/config/yaml-reader';
import type { ObjectMeta } from '../config/object-types';
import { parseDestinationRuleSpec } from './dr-schema';
import { RATE_LIMIT_API, parseRateLimitSpec } from './ratelimit-schema';
import type { DestinationRule, LocalRateLimit, VirtualService } from './types';
import { parseVirtualServiceSpec } from './vs-schema';

const ISTIO_NETWORKING = ['networking.istio.io/v1', 'networking.istio.io/v1beta1', 'networking.istio.io/v1alpha3'];

/** The traffic kinds the waypoint config reader accepts, with their apiVersions. */
export const TRAFFIC_KINDS: Readonly<Record<string, readonly string[]>> = {
  VirtualService: ISTIO_NETWORKING,
  DestinationRule: ISTIO_NETWORKING,
  LocalRateLimit: [RATE_LIMIT_API],
};

export type TrafficObject = { kind: 'VirtualService'; value: VirtualService } | { kind: 'DestinationRule'; value: DestinationRule } | { kind: 'LocalRateLimit'; value: LocalRateLimit };

export function parseTrafficObject(r: YamlReader, kind: string, spec: YNode, path: string, meta: ObjectMeta): TrafficObject | undefined {
  if (kind === 'VirtualService') {
    const value = parseVirtualServiceSpec(r, spec, path, meta);
    return value ? { kind, value } : undefined;
  }
  if (kind === 'DestinationRule') {
    const value = parseDestinationRuleSpec(r, spec, path, meta);
    return value ? { kind, value } : undefined;
  }
  const value = parseRateLimitSpec(r, spec, path, meta);
  return value ? { kind: 'LocalRateLimit', value } : undefined;
}
