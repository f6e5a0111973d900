import test from 'ava';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { createLogger } from '../../../src/logging/logger';
import { LogCollector } from '../../helpers/log-collector';
import { L7ConfigSource } from '../../../src/waypoint/config/source';
import type { L7Config } from '../../../src/waypoint/config/types';

const route = (name: string): string => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ${name} }
spec: { parentRefs: [{ kind: Service, group: "", name: svc }] }
`;

async function until(cond: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function write(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

test('a watched directory: files merged in name order, a bad edit keeps the last good config, unknown kinds logged once', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wp-cfg-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  write(join(dir, 'a.yaml'), route('a'));
  write(join(dir, 'b.yml'), `${route('b')}---\napiVersion: v1\nkind: Secret\nmetadata: { name: s }\n`);
  writeFileSync(join(dir, 'notes.txt'), 'not config');
  const logs = new LogCollector();
  const applied: L7Config[] = [];
  const src = new L7ConfigSource({ path: dir, logger: createLogger({ level: 'info', format: 'json', destination: logs }), registry: new Registry(), onApply: (c) => applied.push(c), debounceMs: 20 });
  await src.start();
  t.teardown(() => src.destroy());
  t.deepEqual(src.config.routes.map((r) => r.meta.name), ['a', 'b']);
  t.is(logs.find((l) => l['msg'] === 'waypoint config: kind not used by the waypoint, ignored' && l['kind'] === 'v1/Secret').length, 1);

  write(join(dir, 'b.yml'), 'apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: { name: b }\nspec: { parentRefs: [{ kind: Service, group: "", name: svc }], bogus: 1 }\n');
  await until(() => logs.find((l) => l['reason'] === 'CONFIG_INVALID').length > 0, 'rejection logged');
  const rej = logs.find((l) => l['reason'] === 'CONFIG_INVALID')[0]!;
  t.regex(String((rej['errors'] as string[])[0]), new RegExp(`^${join(dir, 'b.yml')}:4:\\d+: .*unknown field "bogus"; expected one of: parentRefs, hostnames, rules`));
  t.deepEqual(src.config.routes.map((r) => r.meta.name), ['a', 'b'], 'last good config kept');
  t.like(src.dump(), { lastError: { errors: rej['errors'] } });

  write(join(dir, 'b.yml'), route('c'));
  await until(() => src.config.routes.some((r) => r.meta.name === 'c'), 'fixed config applied');
  t.deepEqual(src.config.routes.map((r) => r.meta.name), ['a', 'c']);
  t.is(applied.length, 2);
});
