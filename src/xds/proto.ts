import { join } from 'node:path';
import { Root, type Type } from 'protobufjs';

/** The two resource types ztunnel subscribes to. */
export const ADDRESS_TYPE = 'type.googleapis.com/istio.workload.Address';
export const AUTHORIZATION_TYPE = 'type.googleapis.com/istio.security.Authorization';
export const XDS_TYPES = [ADDRESS_TYPE, AUTHORIZATION_TYPE] as const;
export type XdsTypeUrl = (typeof XDS_TYPES)[number];

/** Full method path of delta ADS, as istiod serves it and ztunnel calls it. */
export const DELTA_ADS_PATH = '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources';

/*
 * Wire shapes as protobufjs decodes them with keepCase (snake_case field names): absent
 * messages are null, absent scalars their zero value, enums numbers, bytes Uint8Array.
 * Encoding accepts the same shapes with optional fields left out.
 */

export interface PbAny {
  type_url: string;
  value: Uint8Array;
}

export type PbValue =
  | { nullValue: 0 }
  | { numberValue: number }
  | { stringValue: string }
  | { boolValue: boolean }
  | { structValue: PbStruct }
  | { listValue: { values: PbValue[] } };

export interface PbStruct {
  fields: Record<string, PbValue>;
}

export interface PbNode {
  id: string;
  cluster?: string;
  metadata?: PbStruct | null;
}

export interface PbStatus {
  code?: number;
  message: string;
}

export interface PbDeltaRequest {
  node?: PbNode | null;
  type_url: string;
  resource_names_subscribe?: string[];
  resource_names_unsubscribe?: string[];
  initial_resource_versions?: Record<string, string>;
  response_nonce?: string;
  error_detail?: PbStatus | null;
}

export interface PbResource {
  name: string;
  version: string;
  resource: PbAny | null;
  aliases?: string[];
}

export interface PbDeltaResponse {
  system_version_info: string;
  resources: PbResource[];
  type_url: string;
  removed_resources: string[];
  nonce: string;
}

export interface PbNetworkAddress {
  network: string;
  address: Uint8Array;
  length?: number | null;
}

export interface PbGatewayAddress {
  hostname?: { namespace: string; hostname: string } | null;
  address?: PbNetworkAddress | null;
  hbone_mtls_port: number;
}

export interface PbPort {
  service_port: number;
  target_port: number;
  app_protocol?: number;
}

export interface PbWorkload {
  uid: string;
  name: string;
  namespace: string;
  addresses: Uint8Array[];
  hostname: string;
  network: string;
  tunnel_protocol: number;
  trust_domain: string;
  service_account: string;
  waypoint: PbGatewayAddress | null;
  network_gateway: PbGatewayAddress | null;
  node: string;
  canonical_name: string;
  canonical_revision: string;
  workload_type: number;
  workload_name: string;
  native_tunnel: boolean;
  application_tunnel: { protocol: number; port: number } | null;
  services: Record<string, { ports: PbPort[] }>;
  authorization_policies: string[];
  status: number;
  cluster_id: string;
  locality: { region: string; zone: string; subzone: string } | null;
  network_mode: number;
  capacity: { value: number } | null;
}

export interface PbService {
  name: string;
  namespace: string;
  hostname: string;
  addresses: PbNetworkAddress[];
  ports: PbPort[];
  subject_alt_names: string[];
  waypoint: PbGatewayAddress | null;
  load_balancing: { routing_preference: number[]; mode: number; health_policy: number } | null;
  ip_families: number;
  canonical: boolean;
  weighted_waypoints: { destination: PbGatewayAddress | null; weight: number }[];
  visibility: number;
}

export interface PbAddress {
  workload?: PbWorkload | null;
  service?: PbService | null;
  /** The oneof's set member (protobufjs virtual field). */
  type?: 'workload' | 'service';
}

export interface PbStringMatch {
  exact?: string;
  prefix?: string;
  suffix?: string;
  presence?: Record<string, never> | null;
  match_type?: 'exact' | 'prefix' | 'suffix' | 'presence';
}

export interface PbCidr {
  address: Uint8Array;
  length: number;
}

export interface PbMatch {
  namespaces: PbStringMatch[];
  not_namespaces: PbStringMatch[];
  service_accounts: { namespace: string; serviceAccount: string }[];
  not_service_accounts: { namespace: string; serviceAccount: string }[];
  principals: PbStringMatch[];
  not_principals: PbStringMatch[];
  source_ips: PbCidr[];
  not_source_ips: PbCidr[];
  destination_ips: PbCidr[];
  not_destination_ips: PbCidr[];
  destination_ports: number[];
  not_destination_ports: number[];
}

export interface PbAuthorization {
  name: string;
  namespace: string;
  scope: number;
  action: number;
  rules: { clauses: { matches: PbMatch[] }[] }[];
  dry_run: boolean;
}

/** Encoders and decoders for every message delta ADS carries. */
export interface XdsCodec {
  readonly request: Type;
  readonly response: Type;
  readonly address: Type;
  readonly authorization: Type;
  encodeRequest(m: PbDeltaRequest): Buffer;
  decodeRequest(b: Uint8Array): PbDeltaRequest;
  encodeResponse(m: PbDeltaResponse): Buffer;
  decodeResponse(b: Uint8Array): PbDeltaResponse;
}

/** Where proto/ is, from dist/src/xds (shipped next to dist/ in the image). */
export const PROTO_ROOT = join(__dirname, '..', '..', '..', 'proto');

export const PROTO_FILES = {
  discovery: 'envoy/service/discovery/v3/discovery.proto',
  workload: 'istio/workload/workload.proto',
  authorization: 'istio/security/authorization.proto',
} as const;

/**
 * Loads the vendored .proto files (field numbers from Istio and envoy). Each client or
 * server builds its own codec; nothing is cached at module level.
 */
export function loadXdsCodec(protoRoot = PROTO_ROOT): XdsCodec {
  const root = new Root();
  root.resolvePath = (_origin, target) => (target.startsWith('/') ? target : join(protoRoot, target));
  root.loadSync(Object.values(PROTO_FILES), { keepCase: true });
  root.resolveAll();
  const request = root.lookupType('envoy.service.discovery.v3.DeltaDiscoveryRequest');
  const response = root.lookupType('envoy.service.discovery.v3.DeltaDiscoveryResponse');
  return {
    request,
    response,
    address: root.lookupType('istio.workload.Address'),
    authorization: root.lookupType('istio.security.Authorization'),
    encodeRequest: (m) => Buffer.from(request.encode(m).finish()),
    decodeRequest: (b) => request.decode(b) as unknown as PbDeltaRequest,
    encodeResponse: (m) => Buffer.from(response.encode(m).finish()),
    decodeResponse: (b) => response.decode(b) as unknown as PbDeltaResponse,
  };
}
