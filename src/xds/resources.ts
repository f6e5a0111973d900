import type { Authorization, Service, Workload } from '../state/types';
import { ADDRESS_TYPE, AUTHORIZATION_TYPE, type PbAddress, type PbAuthorization, type PbResource, type XdsCodec } from './proto';
import { TranslateError, translateAuthorization, translateService, translateWorkload } from './translate';

/** One decoded resource of a delta response. */
export type DecodedResource =
  | { readonly kind: 'workload'; readonly name: string; readonly version: string; readonly workload: Workload }
  | { readonly kind: 'service'; readonly name: string; readonly version: string; readonly service: Service }
  | { readonly kind: 'policy'; readonly name: string; readonly version: string; readonly policy: Authorization };

/** A resource that could not be used, and why (it goes into the NACK). */
export interface RejectedResource {
  readonly name: string;
  readonly reason: string;
}

/**
 * Decodes one resource of `typeUrl` (the Any payload, then the domain translation). A
 * resource whose Any names another type, that does not decode, or that translation
 * rejects is returned as a rejection; it never throws.
 */
export function decodeResource(codec: XdsCodec, typeUrl: string, r: PbResource): DecodedResource | RejectedResource {
  const name = r.name;
  if (!r.resource) return { name, reason: 'resource without payload' };
  if (r.resource.type_url !== typeUrl) return { name, reason: `payload type ${r.resource.type_url} in a ${typeUrl} response` };
  try {
    if (typeUrl === ADDRESS_TYPE) {
      const a = codec.address.decode(r.resource.value) as unknown as PbAddress;
      if (a.type === 'workload' && a.workload) return { kind: 'workload', name, version: r.version, workload: translateWorkload(a.workload) };
      if (a.type === 'service' && a.service) return { kind: 'service', name, version: r.version, service: translateService(a.service) };
      return { name, reason: 'Address with neither workload nor service' };
    }
    if (typeUrl === AUTHORIZATION_TYPE) {
      const p = codec.authorization.decode(r.resource.value) as unknown as PbAuthorization;
      return { kind: 'policy', name, version: r.version, policy: translateAuthorization(p) };
    }
    return { name, reason: `unsupported type ${typeUrl}` };
  } catch (err) {
    if (err instanceof TranslateError) return { name, reason: err.message };
    return { name, reason: `decode: ${err instanceof Error ? err.message : String(err)}` };
  }
}

export function isRejected(r: DecodedResource | RejectedResource): r is RejectedResource {
  return !('kind' in r);
}
