import test from 'ava';
import { createLogger, logLevelsOf } from '../../../src/logging/logger';
import { LogCollector } from '../../helpers/log-collector';
import { parseLevelSpec } from '../../../src/logging/levels';

test("ztunnel's level spec: a bare level, scoped items, module paths, and errors naming the item", (t) => {
  const ok = parseLevelSpec('info, ztunnel::access=debug,hbone=WARN');
  t.true(ok.ok);
  if (!ok.ok) return;
  t.is(ok.spec.base, 'info');
  t.deepEqual([...ok.spec.scopes], [
    ['access', 'debug'],
    ['hbone', 'warn'],
  ]);
  const scopedOnly = parseLevelSpec('access=trace');
  t.true(scopedOnly.ok && scopedOnly.spec.base === null);
  t.deepEqual(parseLevelSpec('access=loud'), { ok: false, error: '"access=loud": level must be one of trace, debug, info, warn, error, fatal, silent' });
  t.false(parseLevelSpec('').ok);
  t.false(parseLevelSpec('=debug').ok);
});

test('a scoped level reaches the children of that scope only, including ones created before the change', (t) => {
  const logs = new LogCollector();
  const root = createLogger({ level: 'info', format: 'json', destination: logs });
  const access = root.child({ scope: 'access' });
  const hbone = root.child({ scope: 'hbone' });
  const perConnection = access.child({ conn: 1 });
  const levels = logLevelsOf(root);
  t.deepEqual(levels.knownScopes(), ['access', 'hbone']);
  const parsed = parseLevelSpec('warn,access=debug');
  if (!parsed.ok) return t.fail(parsed.error);
  t.deepEqual(levels.apply(parsed.spec), { ok: true });
  root.info('root info');
  hbone.info('hbone info');
  access.debug('access debug');
  perConnection.debug('per-connection debug');
  root.child({ scope: 'hbone' }).warn('new hbone warn');
  t.deepEqual(
    logs.lines.map((l) => l['msg']),
    ['access debug', 'per-connection debug', 'new hbone warn'],
  );
  t.is(levels.describe(), 'warn,access=debug');
  t.deepEqual(levels.apply({ base: null, scopes: new Map([['nope', 'debug']]) }), { ok: false, error: 'unknown scope "nope"; known scopes: access, hbone' });
  levels.reset();
  t.is(levels.describe(), 'info');
  t.is(access.level, 'info');
  t.is(hbone.level, 'info');
});
