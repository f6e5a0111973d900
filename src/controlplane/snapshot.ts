import { createHash } from 'node:crypto';
import { policyKey, serviceKey, type Authorization, type Service, type Workload } from '../state/types';
import { encodeAuthorization, serviceAddress, workloadAddress } from '../xds/encode';
import { ADDRESS_TYPE, AUTHORIZATION_TYPE, type PbResource, type XdsCodec, type XdsTypeUrl } from '../xds/proto';

/** One served resource: its xDS name, content version, encoded payload, and lookup aliases. */
export interface ServedResource {
  readonly name: string;
  readonly version: string;
  readonly value: Uint8Array;
  /**
   * On-demand names that find it: `network/ip` of each workload IP or service VIP, and a
   * workload's `namespace/hostname` when it has one (a service of that name wins).
   */
  readonly aliases: readonly string[];
  /** Resources sent along when this one is asked for on demand: a service's endpoint workloads (by uid). */
  readonly related: readonly string[];
}

/** Every resource of every type, by name: what the control plane serves at one moment. */
export type Snapshot = ReadonlyMap<XdsTypeUrl, ReadonlyMap<string, ServedResource>>;

export interface SnapshotDelta {
  readonly changed: readonly ServedResource[];
  readonly removed: readonly string[];
}

/**
 * The domain state → istiod's resources, named as istiod names them (workloads by uid,
 * services by `namespace/hostname`, policies by `namespace/name`), each versioned by a
 * hash of its encoding so an unchanged resource keeps its version across edits and
 * reconnects.
 */
export function buildSnapshot(codec: XdsCodec, c: { workloads: readonly Workload[]; services: readonly Service[]; policies: readonly Authorization[] }): Snapshot {
  const addresses = new Map<string, ServedResource>();
  const endpoints = new Map<string, string[]>();
  for (const w of c.workloads) {
    const value = codec.address.encode(workloadAddress(w)).finish();
    const aliases = w.networkMode === 'HostNetwork' ? [] : w.workloadIps.map((ip) => `${w.network}/${ip}`);
    if (w.hostname) aliases.push(`${w.namespace}/${w.hostname}`);
    addresses.set(w.uid, { name: w.uid, version: versionOf(value), value, aliases, related: [] });
    for (const key of Object.keys(w.services)) {
      const list = endpoints.get(key);
      if (list) list.push(w.uid);
      else endpoints.set(key, [w.uid]);
    }
  }
  for (const s of c.services) {
    const value = codec.address.encode(serviceAddress(s)).finish();
    const key = serviceKey(s);
    addresses.set(key, { name: key, version: versionOf(value), value, aliases: s.vips.map((v) => `${v.network}/${v.ip}`), related: endpoints.get(key) ?? [] });
  }
  const policies = new Map<string, ServedResource>();
  for (const p of c.policies) {
    const value = codec.authorization.encode(encodeAuthorization(p)).finish();
    const key = policyKey(p);
    policies.set(key, { name: key, version: versionOf(value), value, aliases: [], related: [] });
  }
  return new Map<XdsTypeUrl, ReadonlyMap<string, ServedResource>>([
    [ADDRESS_TYPE, addresses],
    [AUTHORIZATION_TYPE, policies],
  ]);
}

/** What changed from `before` to `after` for one type: new or re-versioned, and gone. */
export function diffType(before: ReadonlyMap<string, ServedResource> | undefined, after: ReadonlyMap<string, ServedResource>): SnapshotDelta {
  const changed: ServedResource[] = [];
  const removed: string[] = [];
  for (const [name, r] of after) if (before?.get(name)?.version !== r.version) changed.push(r);
  for (const name of before?.keys() ?? []) if (!after.has(name)) removed.push(name);
  return { changed, removed };
}

export function toPbResource(typeUrl: XdsTypeUrl, r: ServedResource, name = r.name): PbResource {
  return { name, version: r.version, resource: { type_url: typeUrl, value: r.value }, aliases: name === r.name ? [...r.aliases] : [r.name] };
}

function versionOf(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('base64url').slice(0, 16);
}
