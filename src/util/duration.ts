const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses Go/Rust-style durations as ztunnel's env vars take them: `500ms`, `10s`, `5m`, `24h`, `1h30m`. */
export function parseDuration(s: string): number | null {
  const str = s.trim();
  if (str === '') return null;
  if (/^\d+$/.test(str)) return Number(str) * 1000; // bare number = seconds
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;
  let total = 0;
  let m: RegExpExecArray | null;
  let consumed = 0;
  while ((m = re.exec(str)) !== null) {
    total += Number(m[1]) * (UNIT_MS[m[2] as string] as number);
    consumed = re.lastIndex;
  }
  return consumed === str.length ? Math.round(total) : null;
}

