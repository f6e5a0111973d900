import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Where system tools are looked up. Not the inherited PATH: under npm/npx, PATH starts with
 * node_modules/.bin, where e.g. @vercel/nft (an ava dependency) installs a program named
 * `nft` that would shadow nftables' nft.
 */
const SYSTEM_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/** The absolute path of a system tool, or the bare name when none is found (it then fails as 127). */
export function resolveSystemTool(name: string, dirs: readonly string[] = SYSTEM_DIRS): string {
  if (name.includes('/')) return name;
  for (const d of dirs) {
    const p = path.join(d, name);
    if (fs.existsSync(p)) return p;
  }
  return name;
}

/** Resolves the program and, for `ip netns exec <ns> <prog>`, the program run inside too. */
function resolveArgv(argv: readonly string[]): string[] {
  const out = [...argv];
  out[0] = resolveSystemTool(out[0] as string);
  if (argv[0] === 'ip' && argv[1] === 'netns' && argv[2] === 'exec' && argv.length > 4) out[4] = resolveSystemTool(out[4] as string);
  return out;
}

export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs argv[0] with the rest as arguments (and `input` on stdin); never rejects (a missing program is code 127). */
export type Exec = (argv: readonly string[], input?: string) => Promise<CommandResult>;

/** The real runner: execFile (no shell), bounded in time and output. */
export function systemExec(timeoutMs = 20_000): Exec {
  return (given, input) =>
    new Promise((resolve) => {
      const argv = resolveArgv(given);
      const child = execFile(argv[0] as string, argv.slice(1), { timeout: timeoutMs, maxBuffer: 8 * 1024 * 1024 }, (err, stdout, stderr) => {
        if (!err) return resolve({ code: 0, stdout: String(stdout), stderr: String(stderr) });
        const e = err as NodeJS.ErrnoException & { code?: unknown; killed?: boolean };
        if (e.code === 'ENOENT') return resolve({ code: 127, stdout: '', stderr: `${given[0]}: command not found` });
        if (e.killed) return resolve({ code: 124, stdout: String(stdout), stderr: `${argv.join(' ')}: timed out after ${timeoutMs}ms` });
        resolve({ code: typeof e.code === 'number' ? e.code : 1, stdout: String(stdout), stderr: String(stderr) || e.message });
      });
      child.stdin?.on('error', () => undefined); // the program may exit without reading stdin
      child.stdin?.end(input ?? '');
    });
}

/** Stable codes for why a redirect operation failed (tests and scripts match on these). */
export type RedirectFailure = 'NO_IPTABLES' | 'NO_IPROUTE' | 'NO_NETNS' | 'NOT_PERMITTED' | 'INVALID' | 'COMMAND_FAILED' | 'DRIFT';

/** A failed redirect operation, with a message meant for the operator (what to do next). */
export class RedirectError extends Error {
  constructor(
    readonly code: RedirectFailure,
    message: string,
  ) {
    super(message);
    this.name = 'RedirectError';
  }
}

/**
 * Turns a failed iptables / ip invocation into an actionable message. Known causes first:
 * missing binary, missing namespace, missing privileges; otherwise the command and its stderr.
 */
export function explainFailure(argv: readonly string[], r: CommandResult, netns: string | null): RedirectError {
  const text = `${r.stderr}\n${r.stdout}`;
  if (r.code === 127 && /command not found/.test(r.stderr)) {
    const prog = /^(\S+): command not found/.exec(r.stderr)?.[1] ?? argv[0];
    if (prog === 'ip') return new RedirectError('NO_IPROUTE', 'the ip command is missing: install iproute2 (apt-get install iproute2)');
    if (prog === 'nft') return new RedirectError('NO_IPTABLES', 'nft is missing: install nftables (apt-get install nftables)');
    return new RedirectError('NO_IPTABLES', `${prog} is missing: install iptables (apt-get install iptables)`);
  }
  if (netns !== null && /Cannot open network namespace|No such file or directory.*netns|Invalid netns name/i.test(text)) {
    return new RedirectError('NO_NETNS', `no network namespace named ${netns} (ip netns list)`);
  }
  if (/exec of "[^"]*" failed: No such file or directory/.test(text)) {
    const prog = /exec of "([^"]*)"/.exec(text)?.[1] ?? argv[0];
    return new RedirectError('NO_IPTABLES', `${prog} is missing: install iptables (apt-get install iptables)`);
  }
  if (/Permission denied|you must be root|Operation not permitted|EPERM/i.test(text)) {
    return new RedirectError('NOT_PERMITTED', `needs CAP_NET_ADMIN: run as root (${argv.join(' ')}: ${firstLine(text)})`);
  }
  return new RedirectError('COMMAND_FAILED', `${argv.join(' ')} failed (exit ${r.code}): ${firstLine(text)}`);
}

function firstLine(s: string): string {
  return (
    s
      .split('\n')
      .map((l) => l.trim())
      .find((l) => l !== '' && !l.startsWith('#')) ?? '(no output)'
  );
}
