import type { MeshNode } from './mesh-config';
import { httpGet } from './processes';

export interface NodeTotals {
  readonly opened: number;
  readonly open: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly failures: number;
}

/** Sums one metric family over all its series in Prometheus text (no labels filter). */
export function sumFamily(text: string, name: string, match?: (labels: string) => boolean): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== '{' && rest[0] !== ' ') continue;
    const labels = rest[0] === '{' ? rest.slice(1, rest.indexOf('}')) : '';
    if (match && !match(labels)) continue;
    const v = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(v)) total += v;
  }
  return total;
}

/** Connection and byte totals of one node proxy, from its /metrics (reporter=source: what its clients sent). */
export async function nodeTotals(node: MeshNode): Promise<NodeTotals | null> {
  const r = await httpGet(node.ip, node.ports.stats, '/metrics', 1500);
  if (!r || r.status !== 200) return null;
  const t = r.body;
  return {
    opened: sumFamily(t, 'istio_tcp_connections_opened_total'),
    open: sumFamily(t, 'istio_tcp_sockets_open'),
    bytesIn: sumFamily(t, 'istio_tcp_received_bytes_total'),
    bytesOut: sumFamily(t, 'istio_tcp_sent_bytes_total'),
    failures: sumFamily(t, 'ztunnel_ts_connection_failures_total'),
  };
}

/** One compact line: `12:00:05 node-a conns 4 (1 open) 1.2kB↑ 3.4kB↓ fail 1 | node-b …`. */
export async function summaryLine(nodes: readonly MeshNode[], now: Date): Promise<string> {
  const parts = await Promise.all(
    nodes.map(async (n) => {
      const t = await nodeTotals(n);
      if (!t) return `${n.name} (no metrics)`;
      return `${n.name} conns ${t.opened} (${t.open} open) ${kb(t.bytesIn)}↑ ${kb(t.bytesOut)}↓ fail ${t.failures}`;
    }),
  );
  return `${now.toISOString().slice(11, 19)} ${parts.join(' | ')}`;
}

function kb(n: number): string {
  return n < 1024 ? `${n}B` : `${(n / 1024).toFixed(1)}kB`;
}
