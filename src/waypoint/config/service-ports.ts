import type { YamlReader, YNode } from '../../state/config/yaml-reader';
import type { L7Config, ObjectMeta, PortProtocol, ServicePorts } from './types';

/** Service spec fields the state sources own: accepted (a Service is applied whole) and not read here. */
const STATE_OWNED = ['selector', 'type', 'clusterIP', 'clusterIPs', 'ipFamilies', 'ipFamilyPolicy', 'sessionAffinity', 'sessionAffinityConfig', 'internalTrafficPolicy', 'externalTrafficPolicy', 'publishNotReadyAddresses', 'trafficDistribution'];

const TCP_PROTOCOLS = new Set(['tcp', 'tls', 'https', 'mongo', 'mysql', 'redis']);
const H2_PROTOCOLS = new Set(['http2', 'grpc', 'grpc-web', 'kubernetes.io/h2c']);

/**
 * A Service's port protocols, as Istio reads them: `appProtocol`, else the port name's
 * prefix before "-" (`http-web`, `grpc`, `tcp-db`). Declared TCP is proxied without
 * sniffing (server-first protocols would otherwise wait for PROTOCOL_DETECTION_TIMEOUT);
 * declared HTTP is still told apart as HTTP/1.1 or h2c by its first bytes. The declared
 * kind also fixes how the waypoint speaks to the backend: `http` upstream as HTTP/1.1,
 * `http2`/`grpc` as HTTP/2, whatever the client spoke (Istio's upstream protocol choice).
 */
export function parseServicePorts(r: YamlReader, node: YNode, path: string, meta: ObjectMeta): ServicePorts | undefined {
  const o = r.object(node, path, ['ports', ...STATE_OWNED]);
  if (!o) return undefined;
  const protocols: Record<number, PortProtocol> = {};
  r.list(o.get('ports'), o.at('ports'), 'ports', (n, p) => {
    const po = r.object(n, p, ['name', 'port', 'targetPort', 'protocol', 'appProtocol', 'nodePort']);
    if (!po) return undefined;
    const port = r.int(po.get('port'), po.at('port'), 1, 65535, 'a port');
    const app = r.string(po.get('appProtocol'), po.at('appProtocol'), { def: '' });
    const name = r.string(po.get('name'), po.at('name'), { def: '' });
    const proto = r.string(po.get('protocol'), po.at('protocol'), { def: 'TCP' });
    if (port === undefined || app === undefined || name === undefined || proto === undefined) return undefined;
    if (proto !== 'TCP') return undefined;
    const declared = (app || (name.split('-')[0] ?? '')).toLowerCase();
    if (TCP_PROTOCOLS.has(declared)) protocols[port] = 'tcp';
    else if (H2_PROTOCOLS.has(declared)) protocols[port] = 'http2';
    else if (declared === 'http') protocols[port] = 'http';
    return port;
  });
  return { meta, protocols };
}

/** The declared protocol of a Service port in the waypoint config, or null (detect / as the client spoke). */
export function declaredProtocol(config: L7Config, namespace: string, name: string, port: number): PortProtocol | null {
  return config.services.find((s) => s.meta.namespace === namespace && s.meta.name === name)?.protocols[port] ?? null;
}
