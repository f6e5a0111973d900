import test from 'ava';
import { buildRedirectSpec } from '../../../src/cli/cmd-redirect';
import { loadConfig } from '../../../src/config/load';
import { REDIRECT_KEYS } from '../../../src/config/keys-tools';
import { explainFailure } from '../../../src/redirect/exec';
import { nftInstallScript, nftOutputRules, nftPreroutingRules } from '../../../src/redirect/nft';
import { installSteps, removeSteps, outputRules, preroutingRules, renderStep, markMatch, parseCidr, validateSpec, expectedChainListing, expectedMangleListing, type RedirectSpec } from '../../../src/redirect/rules';

const BASE: RedirectSpec = {
  packetMark: 0x539,
  proxyUid: null,
  outboundPort: 15001,
  inboundPlaintextPort: 15006,
  hbonePort: 15008,
  excludeInboundPorts: [],
  excludeOutboundCidrs: [],
  probeSources: ['169.254.7.127', 'fd16:9254:7127:1337:ffff:ffff:ffff:ffff'],
};

const text = (rules: string[][]): string[] => rules.map((r) => r.join(' '));

test('default OUTPUT: marked, loopback skipped; every other TCP → 15001 (ztunnel-redirect-inpod.sh)', (t) => {
  t.deepEqual(text(outputRules(BASE, 4)), ['-m mark --mark 0x539/0xfff -j RETURN', '-d 127.0.0.0/8 -j RETURN', '-p tcp -j REDIRECT --to-ports 15001']);
  t.deepEqual(text(outputRules(BASE, 6)), ['-m mark --mark 0x539/0xfff -j RETURN', '-d ::1/128 -j RETURN', '-p tcp -j REDIRECT --to-ports 15001']);
});

test('default PREROUTING: 15008 direct, marked, probe SNAT, loopback and 15020/15021/15090 skipped; rest → 15006', (t) => {
  t.deepEqual(text(preroutingRules(BASE, 4)), [
    '-p tcp -m tcp --dport 15008 -j RETURN',
    '-m mark --mark 0x539/0xfff -j RETURN',
    '-s 169.254.7.127/32 -j RETURN',
    '-d 127.0.0.0/8 -j RETURN',
    '-p tcp -m multiport --dports 15020,15021,15090 -j RETURN',
    '-p tcp -j REDIRECT --to-ports 15006',
  ]);
  t.true(text(preroutingRules(BASE, 6)).includes('-s fd16:9254:7127:1337:ffff:ffff:ffff:ffff/128 -j RETURN'));
});

test('proxy uid and excluded CIDRs are skipped per family; CIDRs are canonicalised', (t) => {
  const spec = { ...BASE, proxyUid: 1337, excludeOutboundCidrs: ['10.96.0.0/12', 'FD00::/8', '192.0.2.7'] };
  t.deepEqual(text(outputRules(spec, 4)), ['-m mark --mark 0x539/0xfff -j RETURN', '-m owner --uid-owner 1337 -j RETURN', '-d 127.0.0.0/8 -j RETURN', '-d 10.96.0.0/12 -j RETURN', '-d 192.0.2.7/32 -j RETURN', '-p tcp -j REDIRECT --to-ports 15001']);
  t.true(text(outputRules(spec, 6)).includes('-d fd00::/8 -j RETURN'));
  t.false(text(outputRules(spec, 6)).some((r) => r.includes('10.96.0.0')));
});

test('excluded inbound ports are merged, de-duplicated, sorted and split into multiport groups of 15', (t) => {
  const ports = Array.from({ length: 20 }, (_, i) => 9000 + i);
  const rules = text(preroutingRules({ ...BASE, excludeInboundPorts: [15021, ...ports] }, 4)).filter((r) => r.includes('multiport'));
  t.is(rules.length, 2);
  t.is(rules[0], `-p tcp -m multiport --dports ${ports.slice(0, 15).join(',')} -j RETURN`);
  t.is(rules[1], `-p tcp -m multiport --dports ${[...ports.slice(15), 15020, 15021, 15090].join(',')} -j RETURN`);
});

test('probe sources are configurable per family: host IP instead of the SNAT address, or none', (t) => {
  const spec = { ...BASE, probeSources: ['192.168.5.10', '2001:db8::/64'] };
  t.true(text(preroutingRules(spec, 4)).includes('-s 192.168.5.10/32 -j RETURN'));
  t.false(text(preroutingRules(spec, 4)).some((r) => r.includes('169.254.7.127')));
  t.true(text(preroutingRules(spec, 6)).includes('-s 2001:db8::/64 -j RETURN'));
  t.false(text(preroutingRules({ ...BASE, probeSources: [] }, 4)).some((r) => r.startsWith('-s ')));
  t.deepEqual(validateSpec({ ...BASE, probeSources: ['kubelet'] }), ['REDIRECT_PROBE_SOURCES: "kubelet" is not an IP address or CIDR']);
});

test('mark mask is 0xfff like ztunnel, all bits for larger marks', (t) => {
  t.is(markMatch(0x539), '0x539/0xfff');
  t.is(markMatch(0x10000), '0x10000/0xffffffff');
});

test('install is chain-scoped and idempotent by construction: ensure, flush, refill, jump only if absent', (t) => {
  const steps = installSteps(BASE, 4);
  t.deepEqual(
    steps.map((s) => s.op),
    // nat chains, then the mangle chains of original source removed (it is off).
    ['ensure-chain', 'flush-chain', 'append', 'append', 'append', 'append', 'append', 'append', 'ensure-jump', 'ensure-chain', 'flush-chain', 'append', 'append', 'append', 'ensure-jump', 'delete-jump', 'delete-jump', 'delete-chain', 'delete-chain'],
  );
  t.deepEqual([...new Set(steps.slice(15).map((s) => s.table))], ['mangle']);
  t.true(steps.every((s) => ('to' in s && s.to.startsWith('ZTUNNEL-')) || ('chain' in s && s.chain.startsWith('ZTUNNEL-'))), 'only our chains are touched');
  t.deepEqual(
    removeSteps().map((s) => `${s.table} ${s.op}`),
    ['nat delete-jump', 'nat delete-jump', 'nat delete-chain', 'nat delete-chain', 'mangle delete-jump', 'mangle delete-jump', 'mangle delete-chain', 'mangle delete-chain'],
  );
});

test('original source adds the mangle connmark chains (iptables -S and nft listing form)', (t) => {
  const spec = { ...BASE, origSrc: true };
  const mangle = installSteps(spec, 4).filter((s) => s.table === 'mangle');
  t.deepEqual(
    mangle.map((s) => renderStep(s, ['iptables'])),
    [
      'iptables -t mangle -S ZTUNNEL-PREROUTING >/dev/null 2>&1 || iptables -t mangle -N ZTUNNEL-PREROUTING',
      'iptables -t mangle -F ZTUNNEL-PREROUTING',
      'iptables -t mangle -A ZTUNNEL-PREROUTING -m mark --mark 0x539/0xfff -j CONNMARK --set-xmark 0x111/0xfff',
      'iptables -t mangle -C PREROUTING -j ZTUNNEL-PREROUTING 2>/dev/null || iptables -t mangle -I PREROUTING 1 -j ZTUNNEL-PREROUTING',
      'iptables -t mangle -S ZTUNNEL-OUTPUT >/dev/null 2>&1 || iptables -t mangle -N ZTUNNEL-OUTPUT',
      'iptables -t mangle -F ZTUNNEL-OUTPUT',
      'iptables -t mangle -A ZTUNNEL-OUTPUT -m connmark --mark 0x111/0xfff -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff',
      'iptables -t mangle -C OUTPUT -j ZTUNNEL-OUTPUT 2>/dev/null || iptables -t mangle -I OUTPUT 1 -j ZTUNNEL-OUTPUT',
    ],
  );
  t.deepEqual([...expectedMangleListing(spec).keys()], ['ZTUNNEL-PREROUTING', 'ZTUNNEL-OUTPUT']);
  t.is(expectedMangleListing(BASE).size, 0);
  const nft = nftInstallScript(spec, [4, 6]);
  t.regex(nft, /chain mangle-prerouting \{\n\t\ttype filter hook prerouting priority mangle; policy accept;\n\t\tmeta mark & 0x00000fff == 0x00000539 ct mark set ct mark & 0xfffff111 \| 0x00000111\n/);
  t.regex(nft, /chain mangle-output \{\n\t\ttype route hook output priority mangle; policy accept;\n\t\tct mark & 0x00000fff == 0x00000111 meta mark set ct mark\n/);
  t.notRegex(nftInstallScript(BASE, [4, 6]), /mangle/);
});

test('dry-run rendering is an exact, runnable shell command per step', (t) => {
  const prefix = ['ip', 'netns', 'exec', 'pod-a', 'iptables-nft'];
  const [ensure, flush, first] = installSteps(BASE, 4);
  t.is(renderStep(ensure!, prefix), 'ip netns exec pod-a iptables-nft -t nat -S ZTUNNEL-PREROUTING >/dev/null 2>&1 || ip netns exec pod-a iptables-nft -t nat -N ZTUNNEL-PREROUTING');
  t.is(renderStep(flush!, prefix), 'ip netns exec pod-a iptables-nft -t nat -F ZTUNNEL-PREROUTING');
  t.is(renderStep(first!, prefix), 'ip netns exec pod-a iptables-nft -t nat -A ZTUNNEL-PREROUTING -p tcp -m tcp --dport 15008 -j RETURN');
  const jump = installSteps(BASE, 4).find((s) => s.op === 'ensure-jump')!;
  t.is(renderStep(jump, prefix), 'ip netns exec pod-a iptables-nft -t nat -C PREROUTING -j ZTUNNEL-PREROUTING 2>/dev/null || ip netns exec pod-a iptables-nft -t nat -I PREROUTING 1 -j ZTUNNEL-PREROUTING');
  t.is(renderStep(removeSteps()[0]!, ['iptables']), 'while iptables -t nat -C PREROUTING -j ZTUNNEL-PREROUTING 2>/dev/null; do iptables -t nat -D PREROUTING -j ZTUNNEL-PREROUTING; done');
  // Words with shell metacharacters are quoted.
  t.is(renderStep({ op: 'append', table: 'nat', chain: 'X', rule: ['-m', 'comment', '--comment', "it's"] }, ['iptables']), `iptables -t nat -A X -m comment --comment 'it'\\''s'`);
});

test('check compares against the iptables -S listing', (t) => {
  const m = expectedChainListing(BASE, 4);
  t.deepEqual(m.get('ZTUNNEL-OUTPUT'), ['-N ZTUNNEL-OUTPUT', '-A ZTUNNEL-OUTPUT -m mark --mark 0x539/0xfff -j RETURN', '-A ZTUNNEL-OUTPUT -d 127.0.0.0/8 -j RETURN', '-A ZTUNNEL-OUTPUT -p tcp -j REDIRECT --to-ports 15001']);
});

test('bad values are reported with the key and the value', (t) => {
  t.deepEqual(parseCidr('10.0.0.0/33'), { error: '"10.0.0.0/33": prefix length must be 0-32' });
  t.deepEqual(parseCidr('example.com'), { error: '"example.com" is not an IP address or CIDR' });
  t.deepEqual(validateSpec({ ...BASE, excludeOutboundCidrs: ['nope'], hbonePort: 15001, packetMark: 0 }), [
    'REDIRECT_EXCLUDE_CIDRS: "nope" is not an IP address or CIDR',
    'outbound (15001), inbound plaintext (15006) and HBONE (15001) ports must differ',
    'PACKET_MARK: 0 cannot mark the proxy sockets (use e.g. 0x539)',
  ]);
});

test('the CLI keys build the spec (PACKET_MARK hex, uid, ports, CIDRs)', (t) => {
  const { config } = loadConfig(REDIRECT_KEYS, { PACKET_MARK: '0x539', REDIRECT_EXCLUDE_PORTS: '8080, 9090' }, ['--redirect-proxy-uid', '1337', '--redirect-exclude-cidrs', '10.96.0.0/12']);
  const { spec, issues } = buildRedirectSpec(config);
  t.deepEqual(issues, []);
  t.deepEqual(spec, { ...BASE, proxyUid: 1337, excludeInboundPorts: [8080, 9090], excludeOutboundCidrs: ['10.96.0.0/12'], origSrc: true });
  t.false(buildRedirectSpec(loadConfig(REDIRECT_KEYS, {}, ['--enable-orig-src=false']).config).spec.origSrc);
  const bad = buildRedirectSpec(loadConfig(REDIRECT_KEYS, { REDIRECT_PROXY_UID: 'root' }, []).config);
  t.deepEqual(bad.issues, [{ key: 'REDIRECT_PROXY_UID', value: 'root', expected: 'a numeric uid' }]);
});

test('failures are explained with what to do next (missing tool, namespace, privilege)', (t) => {
  const r = (code: number, stderr: string): { code: number; stdout: string; stderr: string } => ({ code, stdout: '', stderr });
  const missingIpt = explainFailure(['iptables-nft', '-t', 'nat', '-S'], r(127, 'iptables-nft: command not found'), null);
  t.is(missingIpt.code, 'NO_IPTABLES');
  t.is(missingIpt.message, 'iptables-nft is missing: install iptables (apt-get install iptables)');
  t.is(explainFailure(['nft', 'list', 'ruleset'], r(127, 'nft: command not found'), null).message, 'nft is missing: install nftables (apt-get install nftables)');
  t.is(explainFailure(['ip', 'netns', 'exec', 'p', 'true'], r(127, 'ip: command not found'), 'p').code, 'NO_IPROUTE');
  const inNs = explainFailure(['ip', 'netns', 'exec', 'p', 'iptables-legacy'], r(255, 'exec of "iptables-legacy" failed: No such file or directory'), 'p');
  t.is(inNs.code, 'NO_IPTABLES');
  const ns = explainFailure(['ip', 'netns', 'exec', 'pod-x', 'true'], r(255, 'Cannot open network namespace "pod-x": No such file or directory'), 'pod-x');
  t.is(ns.message, 'no network namespace named pod-x (ip netns list)');
  const perm = explainFailure(['iptables', '-t', 'nat', '-N', 'X'], r(4, 'iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)'), null);
  t.is(perm.code, 'NOT_PERMITTED');
  t.regex(perm.message, /^needs CAP_NET_ADMIN: run as root/);
  const other = explainFailure(['iptables', '-t', 'nat', '-A', 'X'], r(2, 'iptables v1.8.9 (nf_tables): unknown option "--bogus"\nTry `iptables -h`'), null);
  t.is(other.code, 'COMMAND_FAILED');
  t.is(other.message, 'iptables -t nat -A X failed (exit 2): iptables v1.8.9 (nf_tables): unknown option "--bogus"');
});

test('nftables rules mirror the iptables ones in nft listing form', (t) => {
  const spec = { ...BASE, proxyUid: 1337, excludeOutboundCidrs: ['10.96.0.0/12'], excludeInboundPorts: [8080] };
  t.deepEqual(nftOutputRules(spec, [4, 6]), [
    'meta l4proto != tcp return',
    'meta mark & 0x00000fff == 0x00000539 return',
    'meta skuid 1337 return',
    'ip daddr 127.0.0.0/8 return',
    'ip6 daddr ::1 return',
    'ip daddr 10.96.0.0/12 return',
    'meta l4proto tcp redirect to :15001',
  ]);
  t.deepEqual(nftPreroutingRules(spec, [4]), [
    'meta l4proto != tcp return',
    'tcp dport 15008 return',
    'meta mark & 0x00000fff == 0x00000539 return',
    'ip saddr 169.254.7.127 return',
    'ip daddr 127.0.0.0/8 return',
    'tcp dport { 8080, 15020, 15021, 15090 } return',
    'meta l4proto tcp redirect to :15006',
  ]);
  t.regex(nftInstallScript(BASE, [4]), /^table inet ztunnel\ndelete table inet ztunnel\ntable inet ztunnel \{\n\tchain prerouting \{\n\t\ttype nat hook prerouting priority dstnat; policy accept;/);
});
