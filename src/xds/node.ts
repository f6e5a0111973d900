import type { PbNode, PbStruct, PbValue } from './proto';

/** What identifies this proxy to istiod (downward-API values and proxy metadata). */
export interface NodeIdentity {
  /** INSTANCE_IP; ztunnel sends 1.1.1.1 when it is unset. */
  readonly instanceIp: string;
  readonly podName: string;
  readonly podNamespace: string;
  readonly nodeName: string;
  /** ISTIO_META_* with the prefix removed. */
  readonly meta: Readonly<Record<string, string>>;
  /** ISTIO_METAJSON_* with the prefix removed, values already parsed. */
  readonly metaJson: Readonly<Record<string, unknown>>;
}

const DEFAULT_IP = '1.1.1.1';

/**
 * The Node ztunnel sends: id `ztunnel~<ip>~<pod>.<ns>~<ns>.svc.cluster.local` (istiod reads
 * the proxy type and namespace from it and checks the token's namespace against it) and
 * metadata NAME, NAMESPACE, INSTANCE_IPS, NODE_NAME, then the ISTIO_META_* values (which
 * may override those four), then the ISTIO_METAJSON_* values.
 */
export function buildNode(n: NodeIdentity): PbNode {
  const ip = n.instanceIp || DEFAULT_IP;
  const fields: Record<string, PbValue> = {
    NAME: { stringValue: n.podName },
    NAMESPACE: { stringValue: n.podNamespace },
    INSTANCE_IPS: { stringValue: ip },
    NODE_NAME: { stringValue: n.nodeName },
  };
  for (const [k, v] of Object.entries(n.meta)) fields[k] = { stringValue: v };
  for (const [k, v] of Object.entries(n.metaJson)) fields[k] = jsonValue(v);
  return { id: `ztunnel~${ip}~${n.podName}.${n.podNamespace}~${n.podNamespace}.svc.cluster.local`, metadata: { fields } };
}

function jsonValue(v: unknown): PbValue {
  if (v === null || v === undefined) return { nullValue: 0 };
  if (typeof v === 'boolean') return { boolValue: v };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'string') return { stringValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(jsonValue) } };
  const s: PbStruct = { fields: {} };
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) s.fields[k] = jsonValue(x);
  return { structValue: s };
}
