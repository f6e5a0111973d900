'use strict';
// Lets the README's two quick-start commands (`npm start`, `npm test`) work on a fresh clone:
// if dependencies are not installed yet, install exactly the locked ones (`npm ci`) first.
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const root = path.resolve(__dirname, '..');
const marker = path.join(root, 'node_modules', '.package-lock.json');
if (fs.existsSync(marker) && fs.existsSync(path.join(root, 'node_modules', 'typescript'))) process.exit(0);
process.stderr.write('ztunnel-ts: dependencies not installed; running npm ci\n');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const r = spawnSync(npm, ['ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
