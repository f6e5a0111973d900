/**
 * SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST and SO_MARK through the N-API addon, against real
 * iptables nat REDIRECT rules in a network namespace this test creates (as in ztunnel,
 * the outbound listener reads the original destination; proxy sockets carry mark 0x539 so
 * the rules skip them). Root only; skipped with the reason otherwise.
 */
import test from 'ava';
import * as path from 'node:path';
import { Topology, rootSkipReason, run, runOk } from '../../helpers/netns';
import { loadCapture } from '../../../src/native/capture';

const CHILD = path.join(__dirname, 'fixtures', 'orig-dst-child.js');

interface CaseResult {
  name: string;
  via?: string;
  dst?: string;
  family?: number;
  source?: string;
  clientMark?: number;
  error?: string;
}

const capture = loadCapture();
const skip = rootSkipReason(['ip', 'iptables']) ?? (capture.available ? null : capture.reason);

if (skip !== null) {
  test.skip(`orig-dst: skipped: ${skip}`, () => undefined);
} else {
  test.serial('REDIRECTed TCP reports its original destination (IPv4, IPv6 via [::] listener); marked sockets are not captured', async (t) => {
    const topo = new Topology('origdst');
    t.teardown(async () => {
      const problems = await topo.destroy();
      if (problems.length) t.log('cleanup problems:', problems);
    });
    const ns = await topo.addNamespace('a');
    // A veth pair with both ends in the namespace gives routes for the "remote" prefixes
    // (REDIRECT happens after the route lookup, so the destination must be routable).
    await runOk('ip', ['-n', ns, 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1']);
    await runOk('ip', ['-n', ns, 'addr', 'add', '10.200.0.1/24', 'dev', 'v0']);
    const v6 = (await run('ip', ['-n', ns, 'addr', 'add', 'fd00:200::1/64', 'dev', 'v0', 'nodad'])).code === 0;
    await runOk('ip', ['-n', ns, 'link', 'set', 'v0', 'up']);
    await runOk('ip', ['-n', ns, 'link', 'set', 'v1', 'up']);
    const rule = (cidr: string): string[] => ['-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '-d', cidr, '-m', 'mark', '!', '--mark', '0x539/0xfff', '-j', 'REDIRECT', '--to-ports', '15001'];
    await runOk('ip', ['netns', 'exec', ns, 'iptables', ...rule('10.200.0.0/24')]);
    const v6Rules = v6 && (await topo.exec(ns, 'ip6tables', rule('fd00:200::/64'))).code === 0;
    if (!v6Rules) t.log('IPv6 case skipped: ip6tables nat is not usable in this namespace');

    const cases = [
      { name: 'v4-redirected', host: '10.200.0.5', port: 80, mark: 0 },
      { name: 'v4-local-redirected', host: '10.200.0.1', port: 8080, mark: 0 },
      { name: 'v4-marked-bypasses', host: '10.200.0.1', port: 8080, mark: 0x539 },
      { name: 'direct-to-listener', host: '127.0.0.1', port: 15001, mark: 0 },
      ...(v6Rules ? [{ name: 'v6-redirected', host: 'fd00:200::5', port: 443, mark: 0 }] : []),
    ];
    const r = await topo.exec(ns, process.execPath, [CHILD, JSON.stringify({ cases })], { timeoutMs: 30_000 });
    t.is(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { results?: CaseResult[]; unavailable?: string; fatal?: string };
    t.falsy(out.fatal, out.fatal);
    t.falsy(out.unavailable, out.unavailable);
    const by = new Map((out.results ?? []).map((c) => [c.name, c]));
    t.log(JSON.stringify(out.results));

    t.like(by.get('v4-redirected'), { via: 'capture', dst: '10.200.0.5:80', family: 4, source: 'so_original_dst' });
    t.like(by.get('v4-local-redirected'), { via: 'capture', dst: '10.200.0.1:8080', family: 4, source: 'so_original_dst' });
    // Dialled like the proxy: the mark is on the descriptor before the SYN, so the nat rule never matched it.
    t.like(by.get('v4-marked-bypasses'), { via: 'direct', dst: '10.200.0.1:8080', clientMark: 0x539 });
    // Not NATed: conntrack's original tuple (or, without an entry, the local-address fallback)
    // is the listener itself, which the outbound path rejects as a self-call.
    t.like(by.get('direct-to-listener'), { via: 'capture', dst: '127.0.0.1:15001', family: 4 });
    if (v6Rules) t.like(by.get('v6-redirected'), { via: 'capture', dst: '[fd00:200::5]:443', family: 6, source: 'so_original_dst' });
  });
}
