import { Registry, Gauge, collectDefaultMetrics } from 'prom-client';

export { Registry };

export interface RegistryOptions {
  component: string;
  /** Process metrics are per-process; several roots in one process (tests) register them once each. */
  processMetrics?: boolean;
}

/** The version reported by istio_build{tag}. Read from package.json at build time by tsc. */
// eslint-disable-next-line @typescript-eslint/no-var-requires
export const VERSION: string = (require('../../../package.json') as { version: string }).version;

/**
 * A fresh Registry per composition root (never prom-client's global default), so several
 * proxies in one process (tests, the local mesh) keep separate metrics.
 */
export function createRegistry(opts: RegistryOptions): Registry {
  const registry = new Registry();
  if (opts.processMetrics !== false) collectDefaultMetrics({ register: registry });
  const build = new Gauge({ name: 'istio_build', help: 'Istio component build info', labelNames: ['component', 'tag'], registers: [registry] });
  build.labels(opts.component, VERSION).set(1);
  return registry;
}
