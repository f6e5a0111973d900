/**
 * The e2e network: two "node" namespaces joined by one veth (the inter-node link), two pod
 * namespaces per node, a non-mesh server ("ext", behind node1) and a non-mesh client
 * ("out", behind node2). Pods are routed like a CNI does it: one veth per pod to its node,
 * default route via the node, nodes route each other's pod ranges over the link.
 *
 *   a1 10.1.1.2 ─┐                                      ┌─ b1 10.2.1.2
 *   a2 10.1.2.2 ─┤ node1 ── inter 10.0.0.1/30 · 10.0.0.2 ── node2 ├─ b2 10.2.2.2
 *   a3 10.1.3.2 ─┤   (dev CA on 10.0.0.1:15012)           └─ out 10.4.0.2
 *  ext 10.3.0.2 ─┘
 *
 * a3 exists from the start but is enrolled only by the pod add/del test.
 *
 * Every address exists only inside these namespaces (none in the host namespace).
 */
import { Topology } from '../helpers/netns';

export interface PodDef {
  readonly name: 'a1' | 'a2' | 'a3' | 'b1' | 'b2';
  readonly node: 'node1' | 'node2';
  readonly ip: string;
  /** Node-side address of the pod's veth (the pod's default gateway). */
  readonly gw: string;
}

export const PODS: readonly PodDef[] = [
  { name: 'a1', node: 'node1', ip: '10.1.1.2', gw: '10.1.1.1' },
  { name: 'a2', node: 'node1', ip: '10.1.2.2', gw: '10.1.2.1' },
  { name: 'a3', node: 'node1', ip: '10.1.3.2', gw: '10.1.3.1' },
  { name: 'b1', node: 'node2', ip: '10.2.1.2', gw: '10.2.1.1' },
  { name: 'b2', node: 'node2', ip: '10.2.2.2', gw: '10.2.2.1' },
];

export const NODE_IP = { node1: '10.0.0.1', node2: '10.0.0.2' } as const;
export const EXT = { ip: '10.3.0.2', gw: '10.3.0.1', node: 'node1' } as const;
export const OUT = { ip: '10.4.0.2', gw: '10.4.0.1', node: 'node2' } as const;
/** The inter-node interface's name in both node namespaces. */
export const INTER_IF = 'inter';

export interface E2eNet {
  readonly topo: Topology;
  /** Namespace name per role: node1, node2, a1, a2, b1, b2, ext, out. */
  readonly ns: Readonly<Record<string, string>>;
}

/** Builds the whole network; on failure the caller's teardown destroys what exists. */
export async function buildNetwork(topo: Topology): Promise<E2eNet> {
  const ns: Record<string, string> = {};
  for (const n of ['node1', 'node2'] as const) ns[n] = await topo.addNamespace(n, { router: true });
  await topo.addVeth({ ns: ns['node1']!, ifname: INTER_IF, addrs: [`${NODE_IP.node1}/30`] }, { ns: ns['node2']!, ifname: INTER_IF, addrs: [`${NODE_IP.node2}/30`] });
  const leaves = [...PODS.map((p) => ({ name: p.name, node: p.node, ip: p.ip, gw: p.gw })), { name: 'ext', ...EXT }, { name: 'out', ...OUT }];
  for (const leaf of leaves) {
    ns[leaf.name] = await topo.addNamespace(leaf.name);
    await topo.addVeth({ ns: ns[leaf.node]!, ifname: leaf.name, addrs: [`${leaf.gw}/24`] }, { ns: ns[leaf.name]!, ifname: 'eth0', addrs: [`${leaf.ip}/24`] });
    await topo.addRoute(ns[leaf.name]!, 'default', { gw: leaf.gw });
  }
  await topo.addRoute(ns['node1']!, '10.2.0.0/16', { gw: NODE_IP.node2 });
  await topo.addRoute(ns['node1']!, '10.4.0.0/16', { gw: NODE_IP.node2 });
  await topo.addRoute(ns['node2']!, '10.1.0.0/16', { gw: NODE_IP.node1 });
  await topo.addRoute(ns['node2']!, '10.3.0.0/16', { gw: NODE_IP.node1 });
  return { topo, ns };
}
