'use strict';
// Mechanical style guardrails, run by `npm test` before the suite:
// - process.env only in src/config/ and src/cli/main.ts (config is parsed once, purely);
// - no console.* in src/ (the pino logger from the composition root is the only output);
// - no prom-client default registry in src/ (each composition root owns its Registry);
// - no test.only in test/ (the rest of the suite would silently not run);
// - node core modules imported with the node: prefix in src/.
const fs = require('node:fs');
const path = require('node:path');
const root = path.resolve(__dirname, '..');

function walk(dir, out = []) {
  if (!fs.existsSync(dir)) return out;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}

const CORE = ['net', 'tls', 'http', 'http2', 'https', 'fs', 'path', 'crypto', 'os', 'child_process', 'stream', 'events', 'dgram', 'dns', 'util', 'zlib', 'url'];
const problems = [];
for (const file of walk(path.join(root, 'src'))) {
  const rel = path.relative(root, file);
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  lines.forEach((line, i) => {
    const at = `${rel}:${i + 1}`;
    if (/\bprocess\.env\b/.test(line) && !rel.startsWith('src/config/') && rel !== 'src/cli/main.ts') problems.push(`${at}: process.env outside src/config and src/cli/main.ts`);
    if (/\bconsole\.(log|error|warn|info|debug)\(/.test(line)) problems.push(`${at}: console.* in src (use the injected pino logger)`);
    if (/\bregister\b.*from 'prom-client'|prom-client'\)\.register\b|\bclient\.register\b/.test(line)) problems.push(`${at}: prom-client default registry`);
    const m = /from '([a-z_0-9]+)'|require\('([a-z_0-9]+)'\)/.exec(line);
    const mod = m && (m[1] || m[2]);
    if (mod && CORE.includes(mod)) problems.push(`${at}: import '${mod}' without the node: prefix`);
  });
}
for (const file of walk(path.join(root, 'test'))) {
  const rel = path.relative(root, file);
  fs.readFileSync(file, 'utf8').split('\n').forEach((line, i) => {
    if (/\btest(\.serial)?\.only\(/.test(line)) problems.push(`${rel}:${i + 1}: test.only`);
  });
}
if (problems.length) {
  process.stderr.write('guardrails failed:\n' + problems.map((p) => '  ' + p).join('\n') + '\n');
  process.exit(1);
}
process.stdout.write('guardrails: ok\n');
