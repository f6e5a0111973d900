/**
 * Runs the pure rule plans of rules.ts against a namespace: install, remove, check, or just
 * print them (dry run). Every command is one execFile of `ip netns exec <ns> <iptables> …`
 * (no shell); the dry-run text is the same commands as a runnable POSIX shell script.
 */
import { type Exec, type CommandResult, RedirectError, explainFailure } from './exec';
import { NFT_TABLE, nftInstallScript, nftTableListing } from './nft';
import { type Backend, detectBackend, checkNamespace, ipv6Enabled, type Flavour } from './backend';
import { type Family, type RedirectSpec, type Step, installSteps, removeSteps, renderStep, expectedChainListing, validateSpec, CHAIN_OUTPUT, CHAIN_PREROUTING } from './rules';

export type RedirectAction = 'install' | 'remove' | 'check';

export interface RedirectRequest {
  readonly action: RedirectAction;
  readonly spec: RedirectSpec;
  /** Named namespace (ip netns), or null for the current one. */
  readonly netns: string | null;
  readonly backend: 'auto' | Flavour;
  readonly dryRun: boolean;
}

export interface RedirectOutcome {
  readonly backend: Backend;
  readonly families: readonly Family[];
  /** Notes for the operator (IPv6 skipped, …). */
  readonly notes: readonly string[];
  /** The shell script (dry run), or the commands that ran. */
  readonly script: string;
  /** check: the differences found (empty = rules present and current). */
  readonly drift: readonly string[];
}

/** Runs one request. Throws RedirectError with an actionable message on any failure. */
export async function runRedirect(exec: Exec, req: RedirectRequest): Promise<RedirectOutcome> {
  const problems = validateSpec(req.spec);
  if (problems.length > 0) throw new RedirectError('INVALID', problems.join('; '));
  const nsPrefix = req.netns === null ? [] : ['ip', 'netns', 'exec', req.netns];
  if (req.netns !== null) await checkNamespace(exec, req.netns);
  const backend = await detectBackend(exec, nsPrefix, req.backend);
  const notes: string[] = [];
  const families: Family[] = [4];
  const v6 = await ipv6Enabled(exec, nsPrefix);
  if (v6.ok) families.push(6);
  else notes.push(v6.note);

  if (backend.flavour === 'nftables') return runNftables(exec, req, nsPrefix, { backend, families, notes });
  const lines: string[] = [];
  const drift: string[] = [];
  for (const family of families) {
    const prefix = [...nsPrefix, backend.iptables[family]];
    if (req.action === 'check') {
      drift.push(...(await checkFamily(exec, prefix, req, family)));
      continue;
    }
    const steps = req.action === 'install' ? installSteps(req.spec, family) : removeSteps();
    if (family === 6 && !req.dryRun && !(await natUsable(exec, prefix))) {
      notes.push(`${backend.iptables[6]} has no usable nat table here: IPv6 rules skipped`);
      continue;
    }
    lines.push(`# IPv${family}`);
    for (const step of steps) {
      lines.push(renderStep(step, prefix));
      if (!req.dryRun) await runStep(exec, prefix, step, req.netns);
    }
    if (req.action === 'remove' && backend.flavour === 'nft') {
      const table = family === 4 ? 'ip' : 'ip6';
      const list = [...nsPrefix, 'nft', 'list', 'table', table, 'nat'].join(' ');
      lines.push(`# drop the nat table iptables-nft created, if it holds nothing but empty base chains\n{ ${list} 2>/dev/null || echo unreadable; } | grep -vE '^\\s*(table |chain (PREROUTING|INPUT|OUTPUT|POSTROUTING) \\{|type |\\}|$)' | grep -q . || ${[...nsPrefix, 'nft', 'delete', 'table', table, 'nat'].join(' ')}`);
      if (!req.dryRun) await dropEmptyNftNat(exec, nsPrefix, table);
    }
  }
  return { backend, families, notes, script: lines.join('\n') + '\n', drift };
}

/**
 * iptables-nft creates the nft `nat` table (with empty base chains) on first use and never
 * deletes it. After remove, if that table holds no rule and no chain but the base ones, we
 * delete it so the namespace's ruleset is exactly what it was before install. Needs the `nft`
 * binary; without it the empty table stays (it captures nothing).
 */
async function dropEmptyNftNat(exec: Exec, nsPrefix: readonly string[], table: 'ip' | 'ip6'): Promise<void> {
  const r = await exec([...nsPrefix, 'nft', 'list', 'table', table, 'nat']);
  if (r.code !== 0) return;
  const body = r.stdout.split('\n').map((l) => l.trim()).filter((l) => l !== '' && l !== '}' && !l.startsWith('table ') && !l.startsWith('type '));
  const baseOnly = body.every((l) => /^chain (PREROUTING|INPUT|OUTPUT|POSTROUTING) \{$/.test(l));
  if (baseOnly) await exec([...nsPrefix, 'nft', 'delete', 'table', table, 'nat']);
}

/** The nftables backend: one atomic `nft -f -` for install, one `delete table` for remove. */
async function runNftables(exec: Exec, req: RedirectRequest, nsPrefix: readonly string[], base: Pick<RedirectOutcome, 'backend' | 'families' | 'notes'>): Promise<RedirectOutcome> {
  const nft = [...nsPrefix, 'nft'];
  const listArgv = [...nft, 'list', 'table', 'inet', NFT_TABLE];
  const must = async (argv: string[], input?: string): Promise<CommandResult> => {
    const r = await exec(argv, input);
    if (r.code !== 0) throw explainFailure(argv, r, req.netns);
    return r;
  };
  if (req.action === 'check') {
    const r = await exec(listArgv);
    if (r.code !== 0) {
      if (/Permission denied|Operation not permitted/i.test(r.stderr)) throw explainFailure(listArgv, r, req.netns);
      return { ...base, script: '', drift: [`nftables table inet ${NFT_TABLE} is missing`] };
    }
    const norm = (t: string): string[] => t.split('\n').map((l) => l.trim()).filter((l) => l !== '');
    const want = norm(nftTableListing(req.spec, base.families));
    const got = norm(r.stdout);
    const drift = want.join('\n') === got.join('\n') ? [] : [`nftables table inet ${NFT_TABLE} differs:\n    expected:\n      ${want.join('\n      ')}\n    found:\n      ${got.join('\n      ')}`];
    return { ...base, script: '', drift };
  }
  if (req.action === 'install') {
    const input = nftInstallScript(req.spec, base.families);
    if (!req.dryRun) await must([...nft, '-f', '-'], input);
    return { ...base, script: `${nft.join(' ')} -f - <<'EOF'\n${input}EOF\n`, drift: [] };
  }
  const script = `if ${listArgv.join(' ')} >/dev/null 2>&1; then ${[...nft, 'delete', 'table', 'inet', NFT_TABLE].join(' ')}; fi\n`;
  if (!req.dryRun && (await exec(listArgv)).code === 0) await must([...nft, 'delete', 'table', 'inet', NFT_TABLE]);
  return { ...base, script, drift: [] };
}

async function natUsable(exec: Exec, prefix: readonly string[]): Promise<boolean> {
  return (await exec([...prefix, '-t', 'nat', '-S', 'OUTPUT'])).code === 0;
}

/** Executes one step with the semantics renderStep's shell text describes. */
async function runStep(exec: Exec, prefix: readonly string[], step: Step, netns: string | null): Promise<void> {
  const ipt = (...args: string[]): string[] => [...prefix, '-t', step.table, ...args];
  const must = async (argv: string[]): Promise<void> => {
    const r = await exec(argv);
    if (r.code !== 0) throw explainFailure(argv, r, netns);
  };
  const ok = async (argv: string[]): Promise<boolean> => (await exec(argv)).code === 0;
  switch (step.op) {
    case 'ensure-chain':
      if (!(await ok(ipt('-S', step.chain)))) await must(ipt('-N', step.chain));
      return;
    case 'flush-chain':
      return must(ipt('-F', step.chain));
    case 'append':
      return must(ipt('-A', step.chain, ...step.rule));
    case 'ensure-jump':
      if (!(await ok(ipt('-C', step.from, '-j', step.to)))) await must(ipt('-I', step.from, '1', '-j', step.to));
      return;
    case 'delete-jump':
      // Bounded: duplicates from hand edits are removed too, but never loop forever.
      for (let i = 0; i < 16 && (await ok(ipt('-C', step.from, '-j', step.to))); i++) await must(ipt('-D', step.from, '-j', step.to));
      return;
    case 'delete-chain':
      if (await ok(ipt('-S', step.chain))) {
        await must(ipt('-F', step.chain));
        await must(ipt('-X', step.chain));
      }
      return;
  }
}

/** Differences between the live chains/jumps and a correct install for one family. */
async function checkFamily(exec: Exec, prefix: readonly string[], req: RedirectRequest, family: Family): Promise<string[]> {
  const drift: string[] = [];
  for (const [chain, lines] of expectedChainListing(req.spec, family)) {
    const argv = [...prefix, '-t', 'nat', '-S', chain];
    const r = await exec(argv);
    if (r.code !== 0) {
      if (/Permission denied|you must be root/i.test(r.stderr)) throw explainFailure(argv, r, req.netns);
      drift.push(`IPv${family}: chain ${chain} is missing`);
      continue;
    }
    const live = r.stdout.split('\n').filter((l) => l.trim() !== '');
    if (live.join('\n') !== lines.join('\n')) drift.push(`IPv${family}: chain ${chain} differs:\n    expected:\n      ${lines.join('\n      ')}\n    found:\n      ${live.join('\n      ')}`);
  }
  for (const [from, to] of [
    ['PREROUTING', CHAIN_PREROUTING],
    ['OUTPUT', CHAIN_OUTPUT],
  ] as const) {
    const r = await exec([...prefix, '-t', 'nat', '-S', from]);
    const first = r.stdout.split('\n').find((l) => l.startsWith(`-A ${from} `));
    if (first !== `-A ${from} -j ${to}`) drift.push(`IPv${family}: ${from} does not jump to ${to} first (first rule: ${first ?? 'none'})`);
  }
  return drift;
}
