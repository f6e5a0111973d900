import { Counter, type Registry } from 'prom-client';
import type { Logger } from 'pino';
import type { AuthzContext, AuthzDecision } from '../policy/types';

/** Reports dry-run policy matches at admission; see DryRunReporter. */
export type DryRunReport = (decision: AuthzDecision, ctx: AuthzContext) => void;

/**
 * Dry-run AuthorizationPolicies never decide a connection; what they would have decided is
 * made visible instead, once per connection at admission (not on policy re-checks): one
 * `dry-run policy matched` line on the `authz` scope naming the policy, the would-be
 * decision and the connection, and `ztunnel_ts_dry_run_policy_matches_total{policy,
 * decision}`. Matches are rare by construction (a policy being trialled), so the line is
 * at info level.
 */
export function createDryRunReporter(registry: Registry, logger: Logger): DryRunReport {
  const log = logger.child({ scope: 'authz' });
  const matches = new Counter({
    name: 'ztunnel_ts_dry_run_policy_matches_total',
    help: 'Connections a dry-run authorization policy matched, by policy and the decision it would have made',
    labelNames: ['policy', 'decision'],
    registers: [registry],
  });
  const report = (policies: readonly string[] | undefined, decision: 'allow' | 'deny', d: AuthzDecision, ctx: AuthzContext): void => {
    for (const policy of policies ?? []) {
      matches.inc({ policy, decision });
      log.info(
        { policy, decision, enforced: d.allowed ? 'allow' : 'deny', 'src.addr': ctx.srcIp, 'src.identity': ctx.srcIdentity?.toString() ?? null, 'dst.addr': `${ctx.dstIp}:${ctx.dstPort}`, 'dst.workload': ctx.dstWorkload.name },
        'dry-run policy matched',
      );
    }
  };
  return (d, ctx) => {
    if (d.dryRunWouldDeny === undefined && d.dryRunWouldAllow === undefined) return;
    report(d.dryRunWouldDeny, 'deny', d, ctx);
    report(d.dryRunWouldAllow, 'allow', d, ctx);
  };
}
