#!/usr/bin/env node
import type { Command, CliIo } from './command';
import { ConfigError } from '../config/load';

/** Commands load lazily so `ztunnel-ts ca` does not pay for the data path's imports. */
const COMMANDS: Record<string, { summary: string; load: () => Command }> = {
  node: { summary: 'node proxy (DaemonSet role): capture 15001/15006/15008, HBONE, L4 policy', load: () => (require('./cmd-node') as typeof import('./cmd-node')).command },
  waypoint: { summary: 'waypoint proxy (per service account): HBONE in, L7, HBONE out', load: () => (require('./cmd-waypoint') as typeof import('./cmd-waypoint')).command },
  ca: { summary: 'dev control plane: Istio CreateCertificate + delta xDS over TLS on 15012', load: () => (require('./cmd-ca') as typeof import('./cmd-ca')).command },
  mesh: { summary: 'run a whole local mesh on loopback from one config file (no root, no Kubernetes)', load: () => (require('./cmd-mesh') as typeof import('./cmd-mesh')).command },
  redirect: { summary: 'install or remove traffic-capture rules (iptables) for a pod netns', load: () => (require('./cmd-redirect') as typeof import('./cmd-redirect')).command },
  agent: { summary: 'stand-in for the istio-cni node agent: serves ZDS, enrols pod network namespaces, installs their capture rules', load: () => (require('./cmd-agent') as typeof import('./cmd-agent')).command },
  explain: { summary: 'explain the route and the policy decision for source, destination and port', load: () => (require('./cmd-explain') as typeof import('./cmd-explain')).command },
};

export function usage(): string {
  const rows = Object.entries(COMMANDS).map(([n, c]) => `  ${n.padEnd(10)} ${c.summary}`);
  return `usage: ztunnel-ts <command> [--flags]\n\ncommands:\n${rows.join('\n')}\n\nRun 'ztunnel-ts <command> --help' for a command's flags and environment variables.\n`;
}

export async function main(io: CliIo): Promise<number> {
  const [name, ...rest] = io.argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  const entry = COMMANDS[name];
  if (!entry) {
    io.stderr.write(`unknown command ${JSON.stringify(name)}\n\n${usage()}`);
    return 2;
  }
  const cmd = entry.load();
  if (rest.includes('--help') || rest.includes('-h')) {
    io.stdout.write(cmd.help());
    return 0;
  }
  try {
    return await cmd.run({ ...io, argv: rest });
  } catch (err) {
    if (err instanceof ConfigError) {
      io.stderr.write(`ztunnel-ts ${name}: ${err.message}\n`);
      return 2;
    }
    io.stderr.write(`ztunnel-ts ${name}: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}

if (require.main === module) {
  const io: CliIo = {
    env: process.env,
    argv: process.argv.slice(2),
    stdout: process.stdout,
    stderr: process.stderr,
    onSignal(fn) {
      const t = (): void => fn('SIGTERM');
      const i = (): void => fn('SIGINT');
      process.on('SIGTERM', t);
      process.on('SIGINT', i);
      return () => {
        process.off('SIGTERM', t);
        process.off('SIGINT', i);
      };
    },
  };
  main(io).then(
    (code) => {
      // Let pino's async destination flush before exiting.
      setImmediate(() => process.exit(code));
    },
    (err: unknown) => {
      process.stderr.write(`fatal: ${String(err)}\n`);
      process.exit(1);
    },
  );
}
