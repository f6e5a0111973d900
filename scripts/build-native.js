'use strict';
// Builds the optional N-API capture addon (native/). The proxy runs without it
// (explicit SOCKS5 / per-workload listeners), so a failed build must not fail
// `npm ci`; we print once, clearly, why transparent capture will be unavailable.
const { spawnSync } = require('node:child_process');
const path = require('node:path');
const fs = require('node:fs');
const root = path.resolve(__dirname, '..');
if (!fs.existsSync(path.join(root, 'binding.gyp'))) process.exit(0);
const gyp = require.resolve('node-gyp/bin/node-gyp.js', { paths: [path.dirname(process.execPath) + '/../lib/node_modules/npm/node_modules', root] });
const r = spawnSync(process.execPath, [gyp, 'rebuild'], { cwd: root, stdio: 'inherit' });
if (r.status !== 0) {
  process.stderr.write('ztunnel-ts: native capture addon did not build (node-gyp exit ' + r.status + '); transparent capture (SO_ORIGINAL_DST, SO_MARK) will be unavailable, explicit modes still work\n');
}
process.exit(0);
