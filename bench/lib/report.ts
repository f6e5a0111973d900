import type { RunResult, MetricResult, WorkersSweep } from './results';
import type { PathId } from '../paths/types';
import { PEER_PATHS, workersOf, type StaticPathId } from '../paths/types';
import { summarize, fmtNum } from './stats';
import { SWEEP_NOTE, sweepCaption, sweepTable } from './sweep';

/** Fills summary, ratio-to-direct and ratio-to-best-peer of one metric from its trials. */
export function finishMetric(m: MetricResult): void {
  for (const [path, vals] of Object.entries(m.trials) as [PathId, number[]][]) {
    const s = summarize(vals);
    if (s) m.summary[path] = s;
  }
  const better = (a: number, b: number): boolean => (m.metric.better === 'higher' ? a > b : a < b);
  let best: PathId | undefined;
  for (const p of PEER_PATHS) {
    const s = m.summary[p];
    if (s && (best === undefined || better(s.median, m.summary[best]!.median))) best = p;
  }
  if (best) m.bestPeer = best;
  const direct = m.summary.direct?.median;
  for (const [path, s] of Object.entries(m.summary) as [PathId, NonNullable<MetricResult['summary'][PathId]>][]) {
    if (direct !== undefined && direct !== 0) m.vsDirect[path] = s.median / direct;
    if (best && m.summary[best]!.median !== 0) m.vsBestPeer[path] = s.median / m.summary[best]!.median;
  }
}

function pad(s: string, n: number, right = false): string {
  return right ? s.padStart(n) : s.padEnd(n);
}

/** One table per scenario: each path's median, spread and both ratios. */
export function terminalReport(r: RunResult): string {
  const lines: string[] = [];
  const m = r.meta;
  lines.push(`ztunnel-ts bench — ${m.mode}, ${m.trials} trial(s) per figure, median [min–max]`);
  lines.push(`machine: ${m.machine.cores} cores (${m.machine.cpuModel}), node ${m.node}, git ${m.gitCommit}, peers: ${Object.entries(m.peers).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}`);
  for (const p of r.paths) {
    if (p.status !== 'ok') lines.push(`path ${p.id}: ${p.status.toUpperCase()} — ${p.reason ?? ''}`.split('\n')[0]!);
  }
  const scenarios = [...new Set(r.metrics.map((x) => x.metric.scenario))];
  for (const sc of scenarios) {
    lines.push('');
    lines.push(`== ${sc} ==`);
    lines.push(`${pad('figure', 36)} ${pad('unit', 10)} ${pad('path', 16)} ${pad('median', 9, true)} ${pad('[min–max]', 19)} ${pad('×direct', 8, true)}  ×best peer`);
    for (const x of r.metrics.filter((y) => y.metric.scenario === sc)) {
      const paths = Object.keys(x.summary) as PathId[];
      paths.forEach((p, i) => {
        const s = x.summary[p]!;
        const vd = x.vsDirect[p];
        const vp = x.vsBestPeer[p];
        const fig = i === 0 ? `${x.metric.better === 'higher' ? '↑' : '↓'} ${x.metric.label}` : '';
        const unit = i === 0 ? x.metric.unit : '';
        lines.push(
          `${pad(fig, 36)} ${pad(unit, 10)} ${pad(p, 16)} ${pad(fmtNum(s.median), 9, true)} ${pad(`[${fmtNum(s.min)}–${fmtNum(s.max)}]`, 19)} ${pad(vd === undefined ? '—' : vd.toFixed(2), 8, true)}  ${vp === undefined ? '—' : `${vp.toFixed(2)} (${x.bestPeer ?? ''})`}`,
        );
      });
    }
    lines.push('(↑ higher is better, ↓ lower is better; ratios are of medians)');
  }
  if (r.sweep) {
    lines.push('');
    lines.push(`== ${sweepCaption(r.sweep)} ==`);
    const widths = [44, 10, 9, 11, 9];
    for (const row of r.sweep.rows) {
      const t = sweepTable(r.sweep, row);
      lines.push(`-- ${t.title} --`);
      for (const cells of [t.head, ...t.cells]) lines.push(cells.map((c, i) => pad(c, widths[i]!, i >= 2)).join(' '));
    }
    lines.push(SWEEP_NOTE);
  }
  if (r.errors.length > 0) {
    lines.push('');
    lines.push('trial errors:');
    for (const e of r.errors) lines.push(`  ${e.scenario}/${e.path}/trial ${e.trial}: ${e.error.split('\n')[0]}`);
  }
  return lines.join('\n');
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const COLORS: Record<StaticPathId, string> = {
  direct: '#888888',
  haproxy: '#2a7ab0',
  stunnel: '#6aa84f',
  mesh: '#d2691e',
  'mesh-nopool': '#e69138',
  passthrough: '#8e44ad',
  // Today's build (--baseline) in grey-brown next to the new one.
  'mesh-base': '#a0826d',
  'mesh-nopool-base': '#c9b29b',
};

/** The workers sweep's paths in oranges, darker with more workers. */
function pathColor(p: PathId): string {
  const n = workersOf(p);
  return n === undefined ? COLORS[p as StaticPathId] : `hsl(28, 80%, ${Math.max(25, 70 - 6 * n)}%)`;
}

/** Horizontal bars (median) with a min–max whisker, one chart per figure. */
function chart(m: MetricResult): string {
  const paths = Object.keys(m.summary) as PathId[];
  if (paths.length === 0) return '';
  const maxV = Math.max(...paths.map((p) => m.summary[p]!.max), 1e-9);
  const rowH = 26;
  const left = 110;
  const width = 620;
  const h = paths.length * rowH + 30;
  const x = (v: number): number => left + (Math.max(0, v) / maxV) * (width - left - 150);
  const rows = paths.map((p, i) => {
    const s = m.summary[p]!;
    const y = 10 + i * rowH;
    const ratio = m.vsDirect[p] !== undefined ? ` ×${m.vsDirect[p]!.toFixed(2)} direct` : '';
    return (
      `<text x="${left - 6}" y="${y + 15}" text-anchor="end" font-size="12">${esc(p)}</text>` +
      `<rect x="${left}" y="${y + 3}" width="${Math.max(1, x(s.median) - left)}" height="16" fill="${pathColor(p)}"><title>${esc(`${p}: median ${fmtNum(s.median)} ${m.metric.unit}, min ${fmtNum(s.min)}, max ${fmtNum(s.max)}, n=${s.n}`)}</title></rect>` +
      `<line x1="${x(s.min)}" x2="${x(s.max)}" y1="${y + 11}" y2="${y + 11}" stroke="#000" stroke-width="1.5"/>` +
      `<text x="${x(s.max) + 6}" y="${y + 15}" font-size="11">${esc(fmtNum(s.median) + ratio)}</text>`
    );
  });
  return (
    `<figure><figcaption>${esc(`${m.metric.label} — ${m.metric.unit} (${m.metric.better} is better)`)}</figcaption>` +
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${h}" role="img">${rows.join('')}</svg></figure>`
  );
}

/** The sweep's tables, one per worker count (the per-figure charts show its paths as bars). */
function sweepHtml(s: WorkersSweep): string {
  const tr = (cells: readonly string[], tag: string): string => `<tr>${cells.map((c) => `<${tag}>${esc(c)}</${tag}>`).join('')}</tr>`;
  const tables = s.rows.map((row) => {
    const t = sweepTable(s, row);
    return `<table><caption>${esc(t.title)}</caption>${tr(t.head, 'th')}${t.cells.map((c) => tr(c, 'td')).join('')}</table>`;
  });
  return `<h2>${esc(sweepCaption(s))}</h2><p>${esc(SWEEP_NOTE)}</p>${tables.join('')}`;
}

/** Self-contained HTML page: metadata, one inline-SVG chart per figure, raw table. */
export function htmlReport(r: RunResult): string {
  const scenarios = [...new Set(r.metrics.map((x) => x.metric.scenario))];
  const sections = scenarios.map((sc) => `<h2>${esc(sc)}</h2><div class="grid">${r.metrics.filter((m) => m.metric.scenario === sc).map(chart).join('')}</div>`);
  const pathsList = r.paths.map((p) => `<li><b>${esc(p.id)}</b> — ${esc(p.status)}${p.describe ? `: ${esc(p.describe)}` : ''}${p.reason ? ` (${esc(p.reason.split('\n')[0]!)})` : ''}</li>`).join('');
  const sweep = r.sweep ? sweepHtml(r.sweep) : '';
  const errs = r.errors.length ? `<h2>trial errors</h2><ul>${r.errors.map((e) => `<li>${esc(`${e.scenario}/${e.path}/trial ${e.trial}: ${e.error.split('\n')[0]}`)}</li>`).join('')}</ul>` : '';
  return `<!doctype html><html><head><meta charset="utf-8"><title>ztunnel-ts bench ${esc(r.meta.startedAt)}</title>
<style>body{font-family:sans-serif;margin:2em;color:#222}figure{margin:0 2em 1.5em 0;display:inline-block;vertical-align:top}figcaption{font-size:13px;font-weight:bold;margin-bottom:4px}pre{background:#f4f4f4;padding:1em;overflow:auto;font-size:12px}table{display:inline-table;border-collapse:collapse;margin:0 2em 1.5em 0;font-size:13px}caption{font-weight:bold;text-align:left}td,th{border:1px solid #ccc;padding:2px 8px}td:nth-child(n+3){text-align:right}</style></head><body>
<h1>ztunnel-ts benchmark</h1>
<p>${esc(`${r.meta.startedAt} · ${r.meta.mode} · ${r.meta.trials} trial(s) per figure (bar = median, whisker = min–max) · ${r.meta.machine.cores} cores ${r.meta.machine.cpuModel} · node ${r.meta.node} · git ${r.meta.gitCommit} · ${Object.entries(r.meta.peers).map(([k, v]) => `${k} ${v}`).join(', ')}`)}</p>
<ul>${pathsList}</ul>
${sweep}
${sections.join('\n')}
${errs}
<h2>tables</h2><pre>${esc(terminalReport(r))}</pre>
</body></html>
`;
}
