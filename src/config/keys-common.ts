import { key, p, type Env } from './key';

/**
 * Drain deadline as ztunnel computes it: CONNECTION_TERMINATION_DEADLINE, else
 * TERMINATION_GRACE_PERIOD_SECONDS − 5 (or −1 when ≤ 10s, minimum 1s), else 5s.
 */
function defaultDeadline(env: Env): string {
  const grace = env['TERMINATION_GRACE_PERIOD_SECONDS'];
  if (grace && /^\d+$/.test(grace)) {
    const g = Number(grace);
    return `${Math.max(1, g <= 10 ? g - 1 : g - 5)}s`;
  }
  return '5s';
}

/** Keys every long-running command shares: logging, the three HTTP servers, drain. */
export const COMMON_KEYS = {
  logLevel: key({ env: 'LOG_LEVEL', doc: 'log level (trace, debug, info, warn, error); RUST_LOG is read when unset', default: (e) => e['RUST_LOG'] ?? 'info', parse: p.logLevel }),
  logFormat: key({ env: 'LOG_FORMAT', doc: 'json (default) or plain', default: 'json', parse: p.oneOf('json', 'plain') }),
  adminAddr: key({ env: 'ADMIN_ADDR', doc: 'admin server (config_dump, logging, quitquitquit); must be loopback', default: '127.0.0.1:15000', parse: p.listen }),
  statsAddr: key({ env: 'STATS_ADDR', doc: 'Prometheus metrics; [::] falls back to 0.0.0.0 without IPv6', default: '[::]:15020', parse: p.listen }),
  readinessAddr: key({ env: 'READINESS_ADDR', doc: 'readiness probe /healthz/ready', default: '[::]:15021', parse: p.listen }),
  terminationDeadline: key({ env: 'CONNECTION_TERMINATION_DEADLINE', doc: 'how long in-flight connections may drain before they are force-closed', default: defaultDeadline, parse: p.duration(0) }),
} as const;
