'use strict';
// Builds the optional N-API capture addon (native/capture.c → build/Release/ztunnel_capture.node).
// Runs from the package.json "install" script, which npm (11 included) runs for the ROOT
// package on `npm install` and `npm ci`; `node scripts/build-native.js` runs it by hand.
// The proxy runs without the addon (explicit SOCKS5 / loopback listeners), so a failed build
// must never fail the install: we print once, clearly, why transparent capture will be
// unavailable and exit 0. src/native/capture.ts reports the same at run time.
//
// Headers: node-gyp would otherwise download them from the Node.js site, which offline CI and
// build machines cannot reach. Every Node install ships them in <prefix>/include/node, so we
// point node-gyp there (--nodedir) whenever they are present.
const { spawnSync } = require('node:child_process');
const path = require('node:path');
const fs = require('node:fs');

const root = path.resolve(__dirname, '..');
const say = (msg) => process.stderr.write('ztunnel-ts: ' + msg + '\n');

function findNodeGyp() {
  // npm exports its bundled node-gyp to lifecycle scripts; fall back to npm's install dir, then ours.
  const fromNpm = process.env.npm_config_node_gyp;
  if (fromNpm && fs.existsSync(fromNpm)) return fromNpm;
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  try {
    return require.resolve('node-gyp/bin/node-gyp.js', { paths: [path.join(prefix, 'lib/node_modules/npm/node_modules'), path.join(prefix, 'node_modules/npm/node_modules'), root] });
  } catch {
    return null;
  }
}

function main() {
  if (!fs.existsSync(path.join(root, 'binding.gyp'))) return;
  if (process.platform !== 'linux') {
    say('native capture addon skipped: transparent capture (SO_ORIGINAL_DST, SO_MARK) is Linux-only; explicit modes still work');
    return;
  }
  const gyp = findNodeGyp();
  if (!gyp) {
    say('native capture addon not built: node-gyp not found (it ships with npm); transparent capture will be unavailable, explicit modes still work');
    return;
  }
  const args = [gyp, 'rebuild', '--loglevel=warn'];
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  if (fs.existsSync(path.join(prefix, 'include/node/node_api.h')) && fs.existsSync(path.join(prefix, 'include/node/common.gypi'))) args.push('--nodedir=' + prefix);
  const started = Date.now();
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) {
    say('native capture addon did not build (node-gyp exit ' + (r.status === null ? r.signal : r.status) + '; needs make, a C compiler and python3); transparent capture (SO_ORIGINAL_DST, SO_MARK) will be unavailable, explicit modes still work');
    return;
  }
  say('native capture addon built in ' + (Date.now() - started) + ' ms: build/Release/ztunnel_capture.node');
}

try {
  main();
} catch (err) {
  say('native capture addon not built: ' + (err && err.message ? err.message : String(err)));
}
process.exit(0);
