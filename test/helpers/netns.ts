/**
 * Network-namespace topologies for root-only tests (capture, redirect rules, e2e).
 *
 * Everything a test creates lives inside namespaces it created itself: interfaces are made
 * with `ip -n <ns> link add … peer … netns <other>`, so no interface, address, route or
 * iptables rule ever touches the host namespace, and names (eth0, 10.x addresses) only need
 * to be unique per namespace. Namespace names carry a prefix and the test process's PID, so
 * parallel test processes never collide and leftovers of a killed run can be recognised and
 * removed (their PID is dead). Long-running processes are started with `ip netns exec`, which
 * execs the command in place, so the PID we hold is the process itself and we kill exactly it.
 * `destroy()` is idempotent and runs every cleanup step even when one fails.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { resolveSystemTool } from '../../src/redirect/exec';

/**
 * System tools by absolute path: under npm/npx the PATH starts with node_modules/.bin, where
 * @vercel/nft (an ava dependency) installs a program called `nft` that shadows nftables'.
 */
function sysArgv(cmd: string, args: readonly string[]): [string, string[]] {
  const out = [...args];
  if (cmd === 'ip' && args[0] === 'netns' && args[1] === 'exec' && args.length > 3) out[3] = resolveSystemTool(args[3] as string);
  return [resolveSystemTool(cmd), out];
}

/** Namespace-name prefix of everything this helper creates. */
const PREFIX = 'ztts';

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/** Which of the given programs are not installed in the system directories. */
export function missingTools(tools: readonly string[]): string[] {
  return tools.filter((t) => !resolveSystemTool(t).startsWith('/'));
}

/** Null when root and all tools are present; otherwise the reason a root-only test is skipped. */
export function rootSkipReason(tools: readonly string[] = ['ip', 'iptables']): string | null {
  if (!isRoot()) return 'needs root (CAP_NET_ADMIN to create network namespaces and iptables rules)';
  const missing = missingTools(tools);
  if (missing.length > 0) return `missing ${missing.join(', ')} (apt-get install iproute2 iptables)`;
  return null;
}

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a program to completion (bounded by timeoutMs); never throws for a non-zero exit. */
export function run(cmd: string, args: readonly string[], opts: { timeoutMs?: number; input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  const [file, argv] = sysArgv(cmd, args);
  return new Promise((resolve) => {
    const child = execFile(file, argv, { timeout: opts.timeoutMs ?? 30_000, maxBuffer: 16 * 1024 * 1024, env: opts.env ?? process.env }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) + (err && code === 1 && !stderr ? String(err.message) : '') });
    });
    if (opts.input !== undefined) {
      // A program may exit without reading all of its input (EPIPE on our side): its exit
      // code and stderr, resolved above, say how it went; the pipe error says nothing more.
      child.stdin?.on('error', () => undefined);
      child.stdin?.end(opts.input);
    }
  });
}

/** Like {@link run} but rejects with the command line and its stderr on a non-zero exit. */
export async function runOk(cmd: string, args: readonly string[], opts: { timeoutMs?: number; input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

/** A long-running process inside a namespace: its output so far and a way to wait for a line. */
export class NsProcess {
  readonly pid: number;
  private out = '';
  private exited: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private readonly waiters: Array<() => void> = [];

  constructor(
    readonly label: string,
    private readonly child: ChildProcess,
  ) {
    if (child.pid === undefined) throw new Error(`${label}: spawn failed`);
    this.pid = child.pid;
    const onData = (b: Buffer): void => {
      // Bounded: keep the last 4 MiB, enough for every assertion on logs.
      this.out = (this.out + b.toString('utf8')).slice(-4 * 1024 * 1024);
      this.wake();
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.on('exit', (code, signal) => {
      this.exited = { code, signal };
      this.wake();
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Everything written to stdout and stderr so far. */
  output(): string {
    return this.out;
  }

  get exitStatus(): { code: number | null; signal: NodeJS.Signals | null } | null {
    return this.exited;
  }

  /** Resolves with the first output line matching `re`; rejects on exit or timeout (with the output). */
  waitFor(re: RegExp, timeoutMs = 15_000): Promise<string> {
    return new Promise((resolve, reject) => {
      const deadline = setTimeout(() => reject(new Error(`${this.label}: no output matching ${re} within ${timeoutMs}ms; output:\n${this.out.slice(-4000)}`)), timeoutMs);
      const check = (): void => {
        const line = this.out.split('\n').find((l) => re.test(l));
        if (line !== undefined) {
          clearTimeout(deadline);
          resolve(line);
        } else if (this.exited) {
          clearTimeout(deadline);
          reject(new Error(`${this.label}: exited (${this.exited.code ?? this.exited.signal}) before output matching ${re}; output:\n${this.out.slice(-4000)}`));
        } else {
          this.waiters.push(check);
        }
      };
      check();
    });
  }

  /** SIGTERM (or the given signal) to exactly this PID; resolves when it exited (SIGKILL after graceMs). */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5_000): Promise<void> {
    if (this.exited) return;
    const done = new Promise<void>((r) => this.child.once('exit', () => r()));
    try {
      process.kill(this.pid, signal);
    } catch {
      return;
    }
    const timer = setTimeout(() => {
      try {
        process.kill(this.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }, graceMs);
    await done;
    clearTimeout(timer);
  }
}

export interface VethEnd {
  readonly ns: string;
  readonly ifname: string;
  /** CIDR addresses, e.g. '10.10.0.1/24' or 'fd10::1/64'. */
  readonly addrs?: readonly string[];
}

/** A set of namespaces and processes that one test owns and must clean up. */
export class Topology {
  private readonly namespaces: string[] = [];
  private readonly processes: NsProcess[] = [];
  private destroyed = false;

  /** @param tag short word naming the test (letters/digits), part of every namespace name. */
  constructor(private readonly tag: string) {}

  /** The full namespace name for a short one: ztts-<tag>-<pid>-<short>. */
  nsName(short: string): string {
    return `${PREFIX}-${this.tag}-${process.pid}-${short}`;
  }

  /** Creates a namespace with lo up (and IPv4/IPv6 forwarding on when `router`). */
  async addNamespace(short: string, opts: { router?: boolean } = {}): Promise<string> {
    const name = this.nsName(short);
    await runOk('ip', ['netns', 'add', name]);
    this.namespaces.push(name);
    await runOk('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    if (opts.router) {
      await this.exec(name, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
      await this.exec(name, 'sysctl', ['-qw', 'net.ipv6.conf.all.forwarding=1']);
    }
    return name;
  }

  /** A veth pair between two namespaces, both ends up, with their addresses (IPv6 without DAD). */
  async addVeth(a: VethEnd, b: VethEnd): Promise<void> {
    await runOk('ip', ['-n', a.ns, 'link', 'add', a.ifname, 'type', 'veth', 'peer', 'name', b.ifname, 'netns', b.ns]);
    for (const end of [a, b]) {
      for (const addr of end.addrs ?? []) {
        await runOk('ip', ['-n', end.ns, 'addr', 'add', addr, 'dev', end.ifname, ...(addr.includes(':') ? ['nodad'] : [])]);
      }
      await runOk('ip', ['-n', end.ns, 'link', 'set', end.ifname, 'up']);
    }
  }

  /** `ip route add <dst> via <gw>` (or `dev`) inside a namespace. */
  async addRoute(ns: string, dst: string, via: { gw?: string; dev?: string }): Promise<void> {
    const args = ['-n', ns, ...(dst.includes(':') ? ['-6'] : []), 'route', 'add', dst];
    if (via.gw) args.push('via', via.gw);
    if (via.dev) args.push('dev', via.dev);
    await runOk('ip', args);
  }

  /** Runs a program inside a namespace to completion. */
  exec(ns: string, cmd: string, args: readonly string[], opts: { timeoutMs?: number; input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
    return run('ip', ['netns', 'exec', ns, cmd, ...args], opts);
  }

  /** Starts a long-running program inside a namespace; it is killed by PID in destroy(). */
  spawn(ns: string, label: string, cmd: string, args: readonly string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): NsProcess {
    const [file, argv] = sysArgv('ip', ['netns', 'exec', ns, cmd, ...args]);
    const child = spawn(file, argv, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const p = new NsProcess(label, child);
    this.processes.push(p);
    return p;
  }

  /** Kills every process started here (by PID), then deletes every namespace. Idempotent. */
  async destroy(): Promise<string[]> {
    if (this.destroyed) return [];
    this.destroyed = true;
    const problems: string[] = [];
    await Promise.all(this.processes.map((p) => p.stop('SIGKILL', 2_000).catch((e: unknown) => problems.push(`${p.label}: ${String(e)}`))));
    for (const ns of this.namespaces.reverse()) {
      const r = await run('ip', ['netns', 'del', ns]);
      if (r.code !== 0) problems.push(`ip netns del ${ns}: ${r.stderr.trim()}`);
    }
    return problems;
  }
}

/**
 * Removes namespaces left by killed test runs: ours (prefix ztts-) whose creating PID no
 * longer exists. Namespaces of live test processes are never touched.
 */
export async function removeStaleNamespaces(): Promise<string[]> {
  const list = await run('ip', ['netns', 'list']);
  const removed: string[] = [];
  for (const line of list.stdout.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const m = new RegExp(`^${PREFIX}-[a-z0-9]+-(\\d+)-`).exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch {
      alive = false;
    }
    if (!alive && (await run('ip', ['netns', 'del', name])).code === 0) removed.push(name);
  }
  return removed;
}
