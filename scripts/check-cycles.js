'use strict';
// Import-cycle and layering check on the TypeScript sources (run by `npm run lint`).
// It reads the .ts files, not the emitted JavaScript: tsc drops `import type`, so a cycle
// made only of type imports is invisible in dist/ yet still couples the modules.
// detective-typescript is told to keep type imports (skipTypeImports: false).
//
// Usage: node scripts/check-cycles.js [dir ...]   (default: src; paths relative to the repo)
// Exit 1 and one line per cycle / forbidden import when any is found.
const path = require('node:path');
const madge = require('madge');

const root = path.resolve(__dirname, '..');

// Lower layers that must not reach up into the node proxy: the role-neutral transport,
// telemetry shared with the waypoint, and the metrics/logging plumbing.
const LAYERS = [
  { from: 'src/transport/', mustNotImport: 'src/proxy/' },
  { from: 'src/telemetry/', mustNotImport: 'src/proxy/' },
  { from: 'src/metrics/', mustNotImport: 'src/proxy/' },
  { from: 'src/logging/', mustNotImport: 'src/proxy/' },
  { from: 'src/state/', mustNotImport: 'src/proxy/' },
  { from: 'src/policy/', mustNotImport: 'src/proxy/' },
];

async function check(dir) {
  const abs = path.resolve(root, dir);
  const res = await madge(abs, {
    baseDir: root,
    fileExtensions: ['ts'],
    tsConfig: path.join(root, 'tsconfig.json'),
    detectiveOptions: { ts: { skipTypeImports: false }, es6: { skipTypeImports: false } },
  });
  const problems = res.circular().map((c) => `cycle: ${[...c, c[0]].join(' -> ')}`);
  const graph = res.obj();
  for (const [file, deps] of Object.entries(graph)) {
    for (const rule of LAYERS) {
      if (!file.startsWith(rule.from)) continue;
      for (const d of deps) if (d.startsWith(rule.mustNotImport)) problems.push(`layering: ${file} imports ${d} (${rule.from} must not import ${rule.mustNotImport})`);
    }
  }
  return { files: Object.keys(graph).length, problems };
}

async function main() {
  const dirs = process.argv.slice(2);
  let failed = false;
  for (const dir of dirs.length ? dirs : ['src']) {
    const { files, problems } = await check(dir);
    if (files === 0) {
      process.stderr.write(`check-cycles: no .ts files under ${dir}\n`);
      failed = true;
    }
    for (const p of problems) process.stderr.write(`${p}\n`);
    if (problems.length) failed = true;
    else if (files) process.stdout.write(`check-cycles: ${dir}: ${files} files, no cycles\n`);
  }
  process.exit(failed ? 1 : 0);
}

main().catch((err) => {
  process.stderr.write(`check-cycles: ${err.stack || err}\n`);
  process.exit(2);
});
