import { join } from 'node:path';
import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

/** google.protobuf.Struct as proto-loader represents it (only string values are used). */
export interface ProtoStruct {
  fields?: Record<string, { stringValue?: string; kind?: string } | undefined>;
}

/** istio.v1.auth.IstioCertificateRequest (proto/istio/v1/auth/ca.proto). */
export interface IstioCertificateRequest {
  csr: string;
  /** int64 seconds; proto-loader hands it over as a decimal string (longs: String). */
  validity_duration: number | string;
  metadata?: ProtoStruct | null;
}

export interface IstioCertificateResponse {
  cert_chain: string[];
}

/** Full method path, as istiod and ztunnel use it. */
export const CREATE_CERTIFICATE_PATH = '/istio.v1.auth.IstioCertificateService/CreateCertificate';

export interface CaServiceDefinition {
  readonly service: ServiceDefinition;
  readonly createCertificate: MethodDefinition<IstioCertificateRequest, IstioCertificateResponse>;
}

/**
 * Loads the CA service from proto/ (shipped next to dist/ in the image). Called by each
 * client or server constructor; nothing is cached at module level.
 */
export function loadCaService(protoRoot = join(__dirname, '..', '..', '..', 'proto')): CaServiceDefinition {
  const pkg = loadSync('istio/v1/auth/ca.proto', { includeDirs: [protoRoot], keepCase: true, longs: String, defaults: true, oneofs: true });
  const service = pkg['istio.v1.auth.IstioCertificateService'] as unknown as ServiceDefinition;
  const createCertificate = service['CreateCertificate'] as MethodDefinition<IstioCertificateRequest, IstioCertificateResponse> | undefined;
  if (!createCertificate || createCertificate.path !== CREATE_CERTIFICATE_PATH) throw new Error(`proto ${protoRoot}/istio/v1/auth/ca.proto does not define ${CREATE_CERTIFICATE_PATH}`);
  return { service, createCertificate };
}

/** The impersonation key the Istio CA reads from request metadata. */
export const IMPERSONATED_IDENTITY = 'ImpersonatedIdentity';
