/**
 * A strict parser for the Prometheus text exposition format (0.0.4), so tests assert that
 * /metrics really parses rather than grepping for a substring.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface ParsedMetrics {
  samples: Sample[];
  types: Map<string, string>;
  help: Map<string, string>;
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const SAMPLE = new RegExp(`^(${NAME})(\\{(.*)\\})?\\s+(\\S+)(\\s+-?\\d+)?$`);
const LABEL = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)/y;

export function parsePrometheusText(text: string): ParsedMetrics {
  const out: ParsedMetrics = { samples: [], types: new Map(), help: new Map() };
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    if (line === '') return;
    if (line.startsWith('# HELP ')) {
      const [, name, ...rest] = line.split(' ').slice(1);
      void name;
      out.help.set(line.split(' ')[2] as string, rest.join(' '));
      return;
    }
    if (line.startsWith('# TYPE ')) {
      const parts = line.split(' ');
      if (parts.length !== 4 || !['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(parts[3] as string)) throw new Error(`line ${i + 1}: bad TYPE: ${line}`);
      out.types.set(parts[2] as string, parts[3] as string);
      return;
    }
    if (line.startsWith('#')) return;
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`line ${i + 1}: not a sample: ${line}`);
    const labels: Record<string, string> = {};
    const body = m[3] ?? '';
    LABEL.lastIndex = 0;
    let pos = 0;
    while (pos < body.length) {
      LABEL.lastIndex = pos;
      const lm = LABEL.exec(body);
      if (!lm) throw new Error(`line ${i + 1}: bad labels: ${body}`);
      labels[lm[1] as string] = (lm[2] as string).replace(/\\"/g, '"').replace(/\\n/g, '\n').replace(/\\\\/g, '\\');
      pos = LABEL.lastIndex;
    }
    const v = m[4] as string;
    // prom-client prints NaN as "Nan" (e.g. nodejs_eventloop_lag_* before the first sample).
    const nan = v === 'NaN' || v === 'Nan';
    const value = v === '+Inf' ? Infinity : v === '-Inf' ? -Infinity : nan ? NaN : Number(v);
    if (Number.isNaN(value) && !nan) throw new Error(`line ${i + 1}: bad value ${v}`);
    out.samples.push({ name: m[1] as string, labels, value });
  });
  return out;
}

/** Sum of samples named `name` whose labels include every pair in `match`. */
export function sumSamples(p: ParsedMetrics, name: string, match: Record<string, string> = {}): number {
  return p.samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);
}
