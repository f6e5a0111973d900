/**
 * `ztunnel-ts redirect install|remove|check` against real iptables in network namespaces this
 * test creates: install is idempotent, remove restores iptables-save byte for byte (foreign
 * rules untouched), dry-run changes nothing and prints a script equivalent to install, the
 * backend follows existing rules, and failures say what to do. Root only.
 */
import test from 'ava';
import * as path from 'node:path';
import { Topology, rootSkipReason, run, runOk, missingTools } from '../../helpers/netns';

const MAIN = path.resolve(__dirname, '../../../src/cli/main.js');
const skip = rootSkipReason(['ip', 'iptables', 'ip6tables', 'iptables-save']);

/** Both families' rulesets, counters and comment lines removed. */
async function snapshot(ns: string, flavour: '' | '-legacy' | '-nft' = ''): Promise<string> {
  const norm = (s: string): string =>
    s
      .split('\n')
      .filter((l) => !l.startsWith('#'))
      .map((l) => l.replace(/ \[\d+:\d+\]$/, ''))
      .join('\n');
  const v4 = await runOk('ip', ['netns', 'exec', ns, `iptables${flavour}-save`]);
  const v6 = await runOk('ip', ['netns', 'exec', ns, `ip6tables${flavour}-save`]);
  return `${norm(v4)}\n----\n${norm(v6)}`;
}

function cli(args: string[], env: NodeJS.ProcessEnv = {}): ReturnType<typeof run> {
  return run(process.execPath, [MAIN, 'redirect', ...args], { env: { PATH: process.env['PATH'], ...env }, timeoutMs: 30_000 });
}

if (skip !== null) {
  test.skip(`redirect: skipped: ${skip}`, () => undefined);
} else {
  test.serial('install is idempotent, check passes, remove restores iptables-save exactly (foreign rules untouched)', async (t) => {
    const topo = new Topology('redir');
    t.teardown(() => topo.destroy());
    const ns = await topo.addNamespace('a');
    // Someone else's rules in the same tables: must survive install and remove.
    await runOk('ip', ['netns', 'exec', ns, 'iptables', '-t', 'nat', '-A', 'OUTPUT', '-d', '10.9.9.9/32', '-j', 'RETURN']);
    await runOk('ip', ['netns', 'exec', ns, 'iptables', '-t', 'nat', '-N', 'FOREIGN']);
    await runOk('ip', ['netns', 'exec', ns, 'ip6tables', '-t', 'nat', '-A', 'PREROUTING', '-s', 'fd00:9::/64', '-j', 'RETURN']);
    const before = await snapshot(ns);

    const first = await cli(['install', '--redirect-netns', ns]);
    t.is(first.code, 0, first.stderr);
    t.regex(first.stdout, new RegExp(`installed capture rules in network namespace ${ns} using iptables-nft .*IPv4 and IPv6`));
    const installed = await snapshot(ns);
    t.regex(installed, /-A OUTPUT -j ZTUNNEL-OUTPUT\n-A OUTPUT -d 10\.9\.9\.9\/32 -j RETURN/, 'our jump is first, the foreign rule kept');
    t.regex(installed, /-A ZTUNNEL-OUTPUT -p tcp -j REDIRECT --to-ports 15001/);
    t.regex(installed, /-A ZTUNNEL-PREROUTING -p tcp -j REDIRECT --to-ports 15006/);
    t.regex(installed, /----[\s\S]*-A ZTUNNEL-PREROUTING -s fd16:9254:7127:1337:ffff:ffff:ffff:ffff\/128 -j RETURN/);

    const second = await cli(['install', '--redirect-netns', ns]);
    t.is(second.code, 0, second.stderr);
    t.is(await snapshot(ns), installed, 'a second install changes nothing');

    const check = await cli(['check', '--redirect-netns', ns]);
    t.is(check.code, 0, check.stdout + check.stderr);
    t.regex(check.stdout, /installed and current/);
    // A config change is drift until re-installed.
    const drift = await cli(['check', '--redirect-netns', ns, '--redirect-exclude-ports', '9000']);
    t.is(drift.code, 1);
    t.regex(drift.stdout, /chain ZTUNNEL-PREROUTING differs/);

    const removed = await cli(['remove', '--redirect-netns', ns]);
    t.is(removed.code, 0, removed.stderr);
    t.is(await snapshot(ns), before, 'remove leaves no trace');
    const again = await cli(['remove', '--redirect-netns', ns]);
    t.is(again.code, 0, again.stderr);
    t.is(await snapshot(ns), before);
    const missing = await cli(['check', '--redirect-netns', ns]);
    t.is(missing.code, 1);
    t.regex(missing.stdout, /chain ZTUNNEL-OUTPUT is missing/);
  });

  test.serial('remove in a namespace that had no nat table leaves an empty ruleset (nft table dropped)', async (t) => {
    if (missingTools(['nft']).length > 0) {
      t.log('nft missing: the empty nat table stays after remove (it captures nothing)');
    }
    const topo = new Topology('redirempty');
    t.teardown(() => topo.destroy());
    const ns = await topo.addNamespace('a');
    t.is((await cli(['install', '--redirect-netns', ns, '--redirect-iptables', 'nft'])).code, 0);
    t.is((await cli(['remove', '--redirect-netns', ns, '--redirect-iptables', 'nft'])).code, 0);
    if (missingTools(['nft']).length === 0) t.is((await runOk('ip', ['netns', 'exec', ns, 'nft', 'list', 'ruleset'])).trim(), '');
    else t.regex(await snapshot(ns), /^\*nat/m);
  });

  test.serial('--dry-run changes nothing and prints a script that installs exactly what install does', async (t) => {
    const topo = new Topology('redirdry');
    t.teardown(() => topo.destroy());
    const a = await topo.addNamespace('a');
    const b = await topo.addNamespace('b');
    const before = await snapshot(a);
    const dry = await cli(['install', '--dry-run', '--redirect-netns', a, '--redirect-exclude-ports', '8080', '--redirect-proxy-uid', '1337']);
    t.is(dry.code, 0, dry.stderr);
    t.is(await snapshot(a), before, 'dry run touched nothing');
    t.regex(dry.stdout, /-A ZTUNNEL-OUTPUT -m owner --uid-owner 1337 -j RETURN/);
    // Run the printed script (it names namespace a), then compare with a real install in b.
    await runOk('sh', ['-e', '-c', dry.stdout]);
    t.is((await cli(['install', '--redirect-netns', b, '--redirect-exclude-ports', '8080', '--redirect-proxy-uid', '1337'])).code, 0);
    t.is(await snapshot(a), await snapshot(b));
  });

  test.serial('backend: REDIRECT_IPTABLES=legacy forces legacy; auto then follows the existing legacy rules', async (t) => {
    if (missingTools(['iptables-legacy', 'iptables-legacy-save', 'ip6tables-legacy-save']).length > 0) {
      t.log('iptables-legacy not installed; only the forced-flavour error path is checked');
      const r = await cli(['install', '--redirect-netns', 'x'], { REDIRECT_IPTABLES: 'legacy' });
      t.not(r.code, 0);
      return;
    }
    const topo = new Topology('redirleg');
    t.teardown(() => topo.destroy());
    const ns = await topo.addNamespace('a');
    // Legacy tables, once used in a namespace, stay: use nat and mangle (original-source
    // routing) first so the snapshots compare only what install adds.
    for (const table of ['nat', 'mangle']) {
      await runOk('ip', ['netns', 'exec', ns, 'iptables-legacy', '-t', table, '-S']);
      await runOk('ip', ['netns', 'exec', ns, 'ip6tables-legacy', '-t', table, '-S']);
    }
    const before = await snapshot(ns, '-legacy');
    const forced = await cli(['install', '--redirect-netns', ns], { REDIRECT_IPTABLES: 'legacy' });
    t.is(forced.code, 0, forced.stderr);
    t.regex(forced.stdout, /using iptables-legacy \(REDIRECT_IPTABLES=legacy\)/);
    t.regex(await snapshot(ns, '-legacy'), /-A OUTPUT -j ZTUNNEL-OUTPUT/);
    const auto = await cli(['check', '--redirect-netns', ns]);
    t.is(auto.code, 0, auto.stdout + auto.stderr);
    t.regex(auto.stdout, /iptables-legacy \(the namespace already has \d+ legacy rules and no nft rules\)/);
    t.is((await cli(['remove', '--redirect-netns', ns])).code, 0);
    t.is(await snapshot(ns, '-legacy'), before);
  });

  const nftTest = missingTools(['nft']).length > 0 ? test.skip : test.serial;
  nftTest(`nftables backend (hosts without iptables, K6): atomic install, idempotent, check, remove leaves foreign tables alone${missingTools(['nft']).length > 0 ? ' — skipped: nft not installed' : ''}`, async (t) => {
    const topo = new Topology('redirnft');
    t.teardown(() => topo.destroy());
    const ns = await topo.addNamespace('a');
    await runOk('ip', ['netns', 'exec', ns, 'nft', 'add table inet foreign; add chain inet foreign c { type filter hook output priority 0; }; add rule inet foreign c tcp dport 9 drop']);
    const ruleset = (): Promise<string> => runOk('ip', ['netns', 'exec', ns, 'nft', 'list', 'ruleset']);
    const before = await ruleset();
    const env = { REDIRECT_IPTABLES: 'nftables' };
    const first = await cli(['install', '--redirect-netns', ns, '--redirect-proxy-uid', '1337'], env);
    t.is(first.code, 0, first.stderr);
    t.regex(first.stdout, /using nft \(REDIRECT_IPTABLES=nftables\)/);
    const installed = await ruleset();
    t.regex(installed, /table inet ztunnel \{[\s\S]*meta skuid 1337 return[\s\S]*redirect to :15001/);
    t.is((await cli(['install', '--redirect-netns', ns, '--redirect-proxy-uid', '1337'], env)).code, 0);
    t.is(await ruleset(), installed, 'idempotent');
    // auto finds our table and checks it with the nftables backend.
    const check = await cli(['check', '--redirect-netns', ns, '--redirect-proxy-uid', '1337']);
    t.is(check.code, 0, check.stdout + check.stderr);
    t.regex(check.stdout, /nft \(the namespace already has the inet ztunnel nftables table\)/);
    t.is((await cli(['check', '--redirect-netns', ns])).code, 1, 'a different config is drift');
    t.is((await cli(['remove', '--redirect-netns', ns])).code, 0);
    t.is(await ruleset(), before, 'remove leaves exactly the foreign table');
  });

  test.serial('IPv6 disabled in the namespace: IPv4 rules only, with a note', async (t) => {
    const topo = new Topology('redirnov6');
    t.teardown(() => topo.destroy());
    const ns = await topo.addNamespace('a');
    await runOk('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1']);
    const r = await cli(['install', '--redirect-netns', ns]);
    t.is(r.code, 0, r.stderr);
    t.regex(r.stderr, /note: IPv6 is disabled in this namespace \(disable_ipv6=1\): IPv6 rules skipped/);
    t.regex(r.stdout, /; IPv4\n$/);
    const [v4, v6] = (await snapshot(ns)).split('----');
    t.regex(v4!, /ZTUNNEL-OUTPUT/);
    t.notRegex(v6!, /ZTUNNEL/);
    t.is((await cli(['remove', '--redirect-netns', ns])).code, 0);
  });

  test.serial('clear errors: unknown namespace, not root, bad values', async (t) => {
    const unknown = await cli(['install', '--redirect-netns', `ztts-nope-${process.pid}`]);
    t.is(unknown.code, 1);
    t.is(unknown.stderr.trim(), `ztunnel-ts redirect install: no network namespace named ztts-nope-${process.pid} (ip netns list)`);

    const topo = new Topology('redirerr');
    t.teardown(() => topo.destroy());
    const ns = await topo.addNamespace('a');
    const before = await snapshot(ns);
    if (missingTools(['setpriv']).length === 0) {
      const r = await run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, MAIN, 'redirect', 'install', '--redirect-netns', ns], { env: { PATH: process.env['PATH'] } });
      t.is(r.code, 1);
      t.regex(r.stderr, /needs CAP_NET_ADMIN: run as root/);
      const cur = await run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, MAIN, 'redirect', 'install'], { env: { PATH: process.env['PATH'] } });
      t.is(cur.code, 1);
      t.regex(cur.stderr, /needs CAP_NET_ADMIN: run as root/);
    } else {
      t.log('setpriv missing: not-root case not exercised');
    }
    const bad = await cli(['install', '--redirect-netns', ns, '--redirect-exclude-cidrs', '10.0.0.0/40']);
    t.is(bad.code, 2);
    t.regex(bad.stderr, /REDIRECT_EXCLUDE_CIDRS: "10\.0\.0\.0\/40": prefix length must be 0-32/);
    const noAction = await cli(['--redirect-netns', ns]);
    t.is(noAction.code, 2);
    t.regex(noAction.stderr, /expected one action \(install, remove, check\)/);
    const badBackend = await cli(['install'], { REDIRECT_IPTABLES: 'ipfw' });
    t.is(badBackend.code, 2);
    t.regex(badBackend.stderr, /REDIRECT_IPTABLES="ipfw": expected one of auto, nft, legacy/);
    t.is(await snapshot(ns), before, 'failed attempts left nothing half-installed');
  });
}
