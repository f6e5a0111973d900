/**
 * Runs the pure rule plans of rules.ts against a namespace: install, remove, check, or just
 * print them (dry run). Every command is one execFile of `ip netns exec <ns> <iptables> …`
 * (no shell); the dry-run text is the same commands as a runnable POSIX shell script.
 */
import { type Exec, type CommandResult, RedirectError, explainFailure } from './exec';
import { NFT_TABLE, nftInstallScript, nftTableListing } from './nft';
import { type Backend, detectBackend, checkNamespace, ipv6Enabled, netnsPrefix, type Flavour } from './backend';
import { type Family, type RedirectSpec, type Step, installSteps, removeSteps, renderStep, expectedChainListing, expectedMangleListing, validateSpec, CHAIN_OUTPUT, CHAIN_PREROUTING } from './rules';
import { routingArgs, routingCheck, routingRemoveArgs } from './orig-src';

export type RedirectAction = 'install' | 'remove' | 'check';

export interface RedirectRequest {
  readonly action: RedirectAction;
  readonly spec: RedirectSpec;
  /** Named namespace (ip netns) or a namespace file path (/proc/<pid>/ns/net), or null for the current one. */
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
  const nsPrefix = req.netns === null ? [] : netnsPrefix(req.netns);
  if (req.netns !== null) await checkNamespace(exec, req.netns);
  const backend = await detectBackend(exec, nsPrefix, req.backend);
  const notes: string[] = [];
  const families: Family[] = [4];
  const v6 = await ipv6Enabled(exec, nsPrefix);
  if (v6.ok) families.push(6);
  else notes.push(v6.note);

  if (backend.flavour === 'nftables') {
    const out = await runNftables(exec, req, nsPrefix, { backend, families, notes });
    const routing = await runRouting(exec, req, nsPrefix, families);
    return { ...out, script: out.script + routing.script, drift: [...out.drift, ...routing.drift] };
  }
  const lines: string[] = [];
  const drift: string[] = [];
  for (const family of families) {
    const prefix = [...nsPrefix, backend.iptables[family]];
    if (req.action === 'check') {
      drift.push(...(await checkFamily(exec, prefix, req, family)));
      continue;
    }
    const planned = req.action === 'install' ? installSteps(req.spec, family) : removeSteps();
    // Even listing a table makes iptables-legacy create it in the namespace; remove the
    // mangle chains only where they exist, so a namespace without them keeps no trace.
    const steps = req.dryRun || (await hasMangleChains(exec, [...nsPrefix, backend.save[family]])) ? planned : planned.filter((s) => s.table !== 'mangle' || !s.op.startsWith('delete-'));
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
      for (const name of ['nat', 'mangle'] as const) {
        const list = [...nsPrefix, 'nft', 'list', 'table', table, name].join(' ');
        lines.push(`# drop the ${name} table iptables-nft created, if it holds nothing but empty base chains\n{ ${list} 2>/dev/null || echo unreadable; } | grep -vE '^\\s*(table |chain (PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) \\{|type |\\}|$)' | grep -q . || ${[...nsPrefix, 'nft', 'delete', 'table', table, name].join(' ')}`);
        if (!req.dryRun) await dropEmptyNftTable(exec, nsPrefix, table, name);
      }
    }
  }
  const routing = await runRouting(exec, req, nsPrefix, families);
  return { backend, families, notes, script: lines.join('\n') + '\n' + routing.script, drift: [...drift, ...routing.drift] };
}

/**
 * The policy rule and local route of original source (orig-src.ts), per family: added on
 * install with orig-src, removed on remove and on an install without it; `check` looks for
 * them when orig-src is asked for. Independent of the firewall backend.
 */
async function runRouting(exec: Exec, req: RedirectRequest, nsPrefix: readonly string[], families: readonly Family[]): Promise<{ script: string; drift: string[] }> {
  const ip = (args: readonly string[]): string[] => [...nsPrefix, 'ip', ...args];
  const lines: string[] = [];
  const drift: string[] = [];
  for (const family of families) {
    if (req.action === 'check') {
      if (!req.spec.origSrc) continue;
      const c = routingCheck(family);
      if (!c.ruleLine.test((await exec(ip(c.rule))).stdout)) drift.push(`IPv${family}: ip rule fwmark 0x111/0xfff lookup 100 is missing`);
      if (!c.routeLine.test((await exec(ip(c.route))).stdout)) drift.push(`IPv${family}: route table 100 has no local default route via lo`);
      continue;
    }
    const del = routingRemoveArgs(family);
    lines.push(`# IPv${family} original-source routing`, `while ${ip(del.rule).join(' ')} 2>/dev/null; do :; done`);
    if (!req.dryRun) for (let i = 0; i < 16 && (await exec(ip(del.rule))).code === 0; i++);
    if (req.action === 'install' && req.spec.origSrc) {
      const add = routingArgs(family);
      lines.push(ip(add.rule).join(' '), ip(add.route).join(' '));
      if (!req.dryRun) {
        for (const argv of [ip(add.rule), ip(add.route)]) {
          const r = await exec(argv);
          if (r.code !== 0) throw explainFailure(argv, r, req.netns);
        }
      }
    } else {
      lines.push(`${ip(del.route).join(' ')} 2>/dev/null || true`);
      if (!req.dryRun) await exec(ip(del.route));
    }
  }
  return { script: lines.length > 0 ? lines.join('\n') + '\n' : '', drift };
}

/**
 * iptables-nft creates the nft `nat` and `mangle` tables (with empty base chains) on first
 * use and never deletes them. After remove, if such a table holds no rule and no chain but
 * the base ones, we delete it so the namespace's ruleset is exactly what it was before
 * install. Needs the `nft` binary; without it the empty table stays (it does nothing).
 */
async function dropEmptyNftTable(exec: Exec, nsPrefix: readonly string[], table: 'ip' | 'ip6', name: 'nat' | 'mangle'): Promise<void> {
  const r = await exec([...nsPrefix, 'nft', 'list', 'table', table, name]);
  if (r.code !== 0) return;
  const body = r.stdout.split('\n').map((l) => l.trim()).filter((l) => l !== '' && l !== '}' && !l.startsWith('table ') && !l.startsWith('type '));
  const baseOnly = body.every((l) => /^chain (PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) \{$/.test(l));
  if (baseOnly) await exec([...nsPrefix, 'nft', 'delete', 'table', table, name]);
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

/** Whether our mangle chains exist, read with `<iptables>-save`, which lists existing tables only. */
async function hasMangleChains(exec: Exec, save: readonly string[]): Promise<boolean> {
  const r = await exec(save);
  const mangle = /^\*mangle$([\s\S]*?)^COMMIT$/m.exec(r.stdout)?.[1] ?? '';
  return new RegExp(`^:(${CHAIN_PREROUTING}|${CHAIN_OUTPUT}) `, 'm').test(mangle);
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
  const expected: Array<readonly ['nat' | 'mangle', string, string[]]> = [
    ...[...expectedChainListing(req.spec, family)].map(([c, l]) => ['nat', c, l] as const),
    ...[...expectedMangleListing(req.spec)].map(([c, l]) => ['mangle', c, l] as const),
  ];
  for (const [table, chain, lines] of expected) {
    const argv = [...prefix, '-t', table, '-S', chain];
    const r = await exec(argv);
    if (r.code !== 0) {
      if (/Permission denied|you must be root/i.test(r.stderr)) throw explainFailure(argv, r, req.netns);
      drift.push(`IPv${family}: ${table} chain ${chain} is missing`);
      continue;
    }
    const live = r.stdout.split('\n').filter((l) => l.trim() !== '');
    if (live.join('\n') !== lines.join('\n')) drift.push(`IPv${family}: ${table} chain ${chain} differs:\n    expected:\n      ${lines.join('\n      ')}\n    found:\n      ${live.join('\n      ')}`);
  }
  for (const table of req.spec.origSrc ? (['nat', 'mangle'] as const) : (['nat'] as const)) {
    for (const [from, to] of [
      ['PREROUTING', CHAIN_PREROUTING],
      ['OUTPUT', CHAIN_OUTPUT],
    ] as const) {
      const r = await exec([...prefix, '-t', table, '-S', from]);
      const first = r.stdout.split('\n').find((l) => l.startsWith(`-A ${from} `));
      if (first !== `-A ${from} -j ${to}`) drift.push(`IPv${family}: ${table === 'nat' ? '' : `${table} `}${from} does not jump to ${to} first (first rule: ${first ?? 'none'})`);
    }
  }
  return drift;
}
