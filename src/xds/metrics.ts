import { Counter, type Registry } from 'prom-client';

/** ztunnel's termination reasons (its ConnectionTerminationReason label values). */
export type TerminationReason = 'ConnectionError' | 'Error' | 'Reconnect' | 'Complete';

export interface XdsMetrics {
  readonly terminations: Counter<'reason'>;
  readonly messages: Counter<'url'>;
  readonly messageBytes: Counter<'url'>;
}

/**
 * ztunnel's xDS metrics, with its names and its label (`url`, the type URL): responses
 * received and the bytes of their resource payloads, and ended streams by reason.
 */
export function createXdsMetrics(registry: Registry): XdsMetrics {
  const terminations = new Counter({ name: 'istio_xds_connection_terminations_total', help: 'The total number of completed connections to xds server (unstable)', labelNames: ['reason'], registers: [registry] });
  const messages = new Counter({ name: 'istio_xds_message_total', help: 'Total number of messages received (unstable)', labelNames: ['url'], registers: [registry] });
  const messageBytes = new Counter({ name: 'istio_xds_message_bytes_total', help: 'Total number of bytes received (unstable)', labelNames: ['url'], registers: [registry] });
  return { terminations, messages, messageBytes };
}
