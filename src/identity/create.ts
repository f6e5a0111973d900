import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { ConfigOf } from '../config/key';
import type { CA_CLIENT_KEYS } from '../config/keys-node';
import type { BackoffOptions } from '../util/backoff';
import type { Clock } from '../util/clock';
import { IstioCaClient, type CaClient } from './ca-client';
import { CertManager, type CertManagerOptions } from './cert-manager';

export type IdentityConfig = ConfigOf<typeof CA_CLIENT_KEYS>;

export interface IdentityManagerOptions {
  /** The CA_CLIENT_KEYS fields of the node or waypoint config. */
  readonly config: IdentityConfig;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly clock: Clock;
  /**
   * node: a node proxy asking on behalf of its workloads (ImpersonatedIdentity on every
   * request); waypoint: the proxy requests its own identity, no impersonation.
   */
  readonly mode: 'node' | 'waypoint';
  /** Test seams: another CA client, a short backoff, a smaller concurrency cap. */
  readonly caClient?: CaClient;
  readonly backoff?: BackoffOptions;
  readonly maxConcurrent?: number;
  readonly csrFactory?: CertManagerOptions['csrFactory'];
  /** Node with data-path worker threads: every new certificate's key goes to them too. */
  readonly shareKey?: CertManagerOptions['shareKey'];
}

/** Builds the certificate manager for a composition root (node or waypoint). */
export function createIdentityManager(o: IdentityManagerOptions): CertManager {
  const c = o.config;
  const caClient =
    o.caClient ??
    new IstioCaClient({ address: c.caAddress, rootCa: c.caRootCa, altHostname: c.altCaHostname, authToken: c.authToken, clusterId: c.clusterId, headers: c.caHeaders });
  return new CertManager({
    caClient,
    caAddress: c.caAddress,
    logger: o.logger,
    registry: o.registry,
    clock: o.clock,
    impersonate: () => o.mode === 'node',
    validitySeconds: Math.max(1, Math.round(c.secretTtl / 1000)),
    ...(o.backoff ? { backoff: o.backoff } : {}),
    ...(o.maxConcurrent ? { maxConcurrent: o.maxConcurrent } : {}),
    ...(o.csrFactory ? { csrFactory: o.csrFactory } : {}),
    ...(o.shareKey ? { shareKey: o.shareKey } : {}),
  });
}
