import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { SpiffeId } from '../../../src/identity/spiffe';
import { createLogger } from '../../../src/logging/logger';
import { LogCollector } from '../../helpers/log-collector';
import { createRegistry } from '../../../src/metrics/registry';
import { createStateMetrics } from '../../../src/metrics/state-metrics';
import { authorizeWithState } from '../../../src/policy/authorize';
import type { AuthzContext, AuthzDecision } from '../../../src/policy/types';
import { LocalConfigSource } from '../../../src/state/local-source';
import { StateUpdater } from '../../../src/state/proxy-state';
import { wl } from '../state/builders';

/**
 * Policies are re-evaluated for live connections (as ztunnel documents for its users).
 * A policy change produces one StateChange with policiesChanged=true, delivered after the
 * new policies are visible; re-running authorize on each live connection's context then
 * gives the new verdict (the connection tracker closes now-denied ones with DENY_LATE).
 * This test drives it end to end from an edited local config file.
 */
const base = `workloads:
- uid: server
  name: server
  namespace: shop
  workloadIps: ["10.0.1.1"]
  protocol: HBONE
policies:
`;
const allowAll = `- {name: allow-shop, namespace: shop, scope: Namespace, action: Allow, dryRun: false, rules: [[[{namespaces: [{Exact: shop}]}]]]}\n`;
const denyClient = `- {name: deny-client, namespace: shop, scope: Namespace, action: Deny, dryRun: false, rules: [[[{principals: [{Exact: cluster.local/ns/shop/sa/client}]}]]]}\n`;

test('a policy edit re-evaluates live connections: allowed before, denied after, with the deciding policy named', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'ztunnel-ts-policy-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'state.yaml');
  writeFileSync(file, base + allowAll);
  const logger = createLogger({ level: 'warn', format: 'json', destination: new LogCollector() });
  const updater = new StateUpdater(logger);
  const metrics = createStateMetrics(createRegistry({ component: 'test', processMetrics: false }));
  const src = new LocalConfigSource({ path: file, inline: null, updater, logger, metrics, debounceMs: 30 });
  t.teardown(() => src.destroy());
  await src.start();

  const server = updater.view.findWorkloadByUid('server')!;
  // Two live inbound connections: one from shop/client, one from shop/other.
  const live: AuthzContext[] = ['client', 'other'].map((sa) => ({ srcIp: '10.0.0.9', srcIdentity: SpiffeId.of('cluster.local', 'shop', sa), dstIp: '10.0.1.1', dstPort: 8080, dstWorkload: server }));
  t.deepEqual(live.map((c) => authorizeWithState(updater.view, c).allowed), [true, true]);

  const verdicts = new Promise<AuthzDecision[]>((resolve) => {
    const off = updater.view.onChange((change) => {
      if (!change.policiesChanged) return;
      off();
      // Re-authorize against the state as it is now (the listener runs after the swap).
      resolve(live.map((c) => authorizeWithState(updater.view, { ...c, dstWorkload: updater.view.findWorkloadByUid('server')! })));
    });
  });
  writeFileSync(file, base + allowAll + denyClient);
  const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 5000));
  const got = await Promise.race([verdicts, timeout]);
  if (got === 'timeout') return t.fail('no policy change seen within 5s');
  t.like(got[0], { allowed: false, policy: 'shop/deny-client', why: 'explicitly denied by: shop/deny-client' });
  t.like(got[1], { allowed: true, policy: 'shop/allow-shop' });
});

test('a workload change alone does not flag policiesChanged (no needless re-authorization)', (t) => {
  const u = new StateUpdater();
  u.source('test').applyBatch({ policies: { upsert: [{ name: 'p', namespace: 'n', scope: 'Namespace', action: 'Allow', dryRun: false, rules: [] }] } });
  const c = u.source('test').applyBatch({ workloads: { upsert: [wl('w', { namespace: 'n', workloadIps: ['10.0.0.1'] })] } });
  t.false(c?.policiesChanged);
});
