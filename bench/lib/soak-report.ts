import type { SoakResult, SoakSample } from '../soak';

/** Least-squares slope of `y` over the samples' time, per hour; 0 with fewer than two samples. */
export function slopePerHour(samples: readonly SoakSample[], y: (s: SoakSample) => number): number {
  const n = samples.length;
  if (n < 2) return 0;
  let sx = 0;
  let sy = 0;
  for (const s of samples) {
    sx += s.t;
    sy += y(s);
  }
  const mx = sx / n;
  const my = sy / n;
  let num = 0;
  let den = 0;
  for (const s of samples) {
    num += (s.t - mx) * (y(s) - my);
    den += (s.t - mx) ** 2;
  }
  return den === 0 ? 0 : (num / den) * 3600;
}

interface Series {
  readonly label: string;
  readonly unit: string;
  /** One line per proxy (or one line for a load figure). */
  readonly lines: readonly { readonly name: string; readonly y: (s: SoakSample) => number | null }[];
}

const SERIES: readonly Series[] = [
  { label: 'RSS', unit: 'MiB', lines: [0, 1].map((i) => ({ name: i === 0 ? 'node A' : 'node B', y: (s: SoakSample) => s.proxies[i]?.rssMiB ?? null })) },
  { label: 'JS heap used', unit: 'MiB', lines: [0, 1].map((i) => ({ name: i === 0 ? 'node A' : 'node B', y: (s: SoakSample) => s.proxies[i]?.heapMiB ?? null })) },
  { label: 'open fds', unit: 'fds', lines: [0, 1].map((i) => ({ name: i === 0 ? 'node A' : 'node B', y: (s: SoakSample) => s.proxies[i]?.fds ?? null })) },
  { label: 'event-loop delay p99', unit: 'ms', lines: [0, 1].map((i) => ({ name: i === 0 ? 'node A' : 'node B', y: (s: SoakSample) => s.proxies[i]?.loopP99Ms ?? null })) },
  { label: 'request/response p99', unit: 'µs', lines: [{ name: 'p99', y: (s) => s.rrP99us }] },
  { label: 'new connections', unit: 'conn/s', lines: [{ name: 'conn/s', y: (s) => s.connsPerSec }] },
  { label: 'bulk upload', unit: 'MB/s', lines: [{ name: 'MB/s', y: (s) => s.bulkMBps }] },
  { label: 'machine load average (1 min)', unit: 'load', lines: [{ name: 'load', y: (s) => s.load1 }] },
];

const COLORS = ['#1f77b4', '#d62728'];

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function lineChart(samples: readonly SoakSample[], se: Series): string {
  const w = 460;
  const h = 180;
  const pad = { l: 52, r: 10, t: 10, b: 26 };
  const tMax = Math.max(1, ...samples.map((s) => s.t));
  const ys = samples.flatMap((s) => se.lines.map((l) => l.y(s))).filter((v): v is number => v !== null && Number.isFinite(v));
  const yMax = Math.max(1e-9, ...ys) * 1.1;
  const x = (t: number): number => pad.l + (t / tMax) * (w - pad.l - pad.r);
  const y = (v: number): number => h - pad.b - (v / yMax) * (h - pad.t - pad.b);
  const parts: string[] = [
    `<line x1="${pad.l}" y1="${h - pad.b}" x2="${w - pad.r}" y2="${h - pad.b}" stroke="#999"/>`,
    `<line x1="${pad.l}" y1="${pad.t}" x2="${pad.l}" y2="${h - pad.b}" stroke="#999"/>`,
    `<text x="${pad.l - 4}" y="${pad.t + 8}" font-size="10" text-anchor="end">${yMax.toPrecision(3)}</text>`,
    `<text x="${pad.l - 4}" y="${h - pad.b}" font-size="10" text-anchor="end">0</text>`,
    `<text x="${w - pad.r}" y="${h - 8}" font-size="10" text-anchor="end">${tMax.toFixed(0)} s</text>`,
  ];
  se.lines.forEach((l, i) => {
    const pts = samples.map((s) => [s.t, l.y(s)] as const).filter((p): p is readonly [number, number] => p[1] !== null);
    if (pts.length === 0) return;
    const color = COLORS[i % COLORS.length]!;
    parts.push(`<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${pts.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ')}"/>`);
    if (se.lines.length > 1) parts.push(`<text x="${pad.l + 6 + i * 60}" y="${pad.t + 10}" font-size="10" fill="${color}">${esc(l.name)}</text>`);
  });
  return `<figure><figcaption>${esc(`${se.label} (${se.unit})`)}</figcaption><svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" role="img">${parts.join('')}</svg></figure>`;
}

export function soakTerminal(r: SoakResult): string {
  const first = r.samples[0];
  const last = r.samples[r.samples.length - 1];
  const lines = [
    `ztunnel-ts soak — ${r.meta.minutes} min, ${r.samples.length} samples every ${r.meta.windowMs / 1000} s, node ${r.meta.node}, ${r.meta.machine}`,
    `path: ${r.meta.describe}`,
    `mix: ${r.meta.mix}`,
  ];
  if (first && last) {
    const tot = (s: SoakSample, f: (p: SoakSample['proxies'][number]) => number | null): string => s.proxies.map((p) => f(p)?.toFixed(1) ?? '?').join(' + ');
    lines.push(`RSS MiB      first ${tot(first, (p) => p.rssMiB)}   last ${tot(last, (p) => p.rssMiB)}`);
    lines.push(`heap MiB     first ${tot(first, (p) => p.heapMiB)}   last ${tot(last, (p) => p.heapMiB)}`);
    lines.push(`fds          first ${tot(first, (p) => p.fds)}   last ${tot(last, (p) => p.fds)}`);
    const rr = r.samples.map((s) => s.rrP99us).sort((a, b) => a - b);
    const loop = r.samples.flatMap((s) => s.proxies.map((p) => p.loopP99Ms ?? 0)).sort((a, b) => a - b);
    lines.push(`rr p99 µs    median over windows ${rr[Math.floor(rr.length / 2)]}, worst ${rr[rr.length - 1]}`);
    lines.push(`loop p99 ms  median over windows ${loop[Math.floor(loop.length / 2)]?.toFixed(1)}, worst ${loop[loop.length - 1]?.toFixed(1)}`);
    lines.push(`totals       ${r.samples.reduce((a, s) => a + s.rrCount, 0)} round trips, ${r.samples.reduce((a, s) => a + s.conns, 0)} churned connections`);
  }
  lines.push(`slopes after the first minute: ${Object.entries(r.slopes).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')}`);
  lines.push(`failed connections/exchanges: ${r.failed}`);
  return lines.join('\n');
}

export function soakHtml(r: SoakResult): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>ztunnel-ts soak ${esc(r.meta.startedAt)}</title>
<style>body{font-family:sans-serif;margin:2em;color:#222}figure{margin:0 2em 1.5em 0;display:inline-block;vertical-align:top}figcaption{font-size:13px;font-weight:bold;margin-bottom:4px}pre{background:#f4f4f4;padding:1em;overflow:auto;font-size:12px}</style></head><body>
<h1>ztunnel-ts soak</h1>
${SERIES.map((se) => lineChart(r.samples, se)).join('\n')}
<h2>summary</h2><pre>${esc(soakTerminal(r))}</pre>
</body></html>
`;
}
