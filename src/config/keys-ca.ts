import { key, p } from './key';
import { COMMON_KEYS } from './keys-common';

/** The dev CA (`ztunnel-ts ca`); its interface is documented in certs/README.md. */
export const CA_KEYS = {
  logLevel: COMMON_KEYS.logLevel,
  logFormat: COMMON_KEYS.logFormat,
  listenAddr: key({ env: 'CA_LISTEN_ADDR', doc: 'gRPC CreateCertificate over TLS', default: '127.0.0.1:15012', parse: p.listen }),
  dir: key({ env: 'CA_DIR', doc: 'holds root-cert.pem and root-key.pem; created on first start', default: './.ca', parse: p.string }),
  tokens: key({ env: 'CA_TOKENS', doc: 'file holding a YAML or JSON list of {token, namespace, serviceAccount, node}', default: '', parse: p.optString }),
  trustedNodeAccounts: key({ env: 'CA_TRUSTED_NODE_ACCOUNTS', doc: 'namespace/serviceAccount list allowed to impersonate (node proxies)', default: 'istio-system/ztunnel', parse: p.list }),
  localXdsPath: key({ env: 'LOCAL_XDS_PATH', doc: 'workloads, services, policies (ztunnel local format): served over delta xDS, and where workloads run (impersonation is allowed only for workloads on the caller node)', default: '', parse: p.optString }),
  trustDomain: key({ env: 'TRUST_DOMAIN', doc: 'trust domain of issued identities', default: 'cluster.local', parse: p.string }),
  maxTtl: key({ env: 'CA_MAX_TTL', doc: 'longest validity the CA grants', default: '48h', parse: p.duration(1000) }),
  serverSans: key({ env: 'CA_SERVER_SANS', doc: 'extra DNS names / IPs for the CA serving certificate', default: 'localhost,127.0.0.1,::1,istiod.istio-system.svc', parse: p.list }),
} as const;
