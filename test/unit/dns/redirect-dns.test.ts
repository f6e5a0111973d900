/**
 * The DNS capture rules of `redirect install --dns-capture` (and of the agent with
 * DNS_CAPTURE=true), in the exact form iptables -S / nft list print them: the same as
 * istio-cni's, after the mark exclusion so the proxy's own upstream queries leave untouched.
 * test/integration/dns/redirect-dns.test.ts installs and checks them with the real tools.
 */
import test from 'ava';
import { buildRedirectSpec } from '../../../src/cli/cmd-redirect';
import { loadConfig } from '../../../src/config/load';
import { REDIRECT_KEYS } from '../../../src/config/keys-tools';
import { nftOutputRules } from '../../../src/redirect/nft';
import { expectedChainListing, outputRules, type RedirectSpec } from '../../../src/redirect/rules';

const BASE: RedirectSpec = { packetMark: 0x539, proxyUid: 1337, outboundPort: 15001, inboundPlaintextPort: 15006, hbonePort: 15008, excludeInboundPorts: [], excludeOutboundCidrs: [], probeSources: [] };
const text = (rules: string[][]): string[] => rules.map((r) => r.join(' '));

test('--dns-capture: UDP 53 not via lo and TCP 53 not to localhost → 15053, after the mark and uid exclusions', (t) => {
  t.deepEqual(text(outputRules({ ...BASE, dnsCapture: true }, 4)), [
    '-m mark --mark 0x539/0xfff -j RETURN',
    '-m owner --uid-owner 1337 -j RETURN',
    '! -o lo -p udp -m udp --dport 53 -j REDIRECT --to-ports 15053',
    '! -d 127.0.0.1/32 -p tcp -m tcp --dport 53 -j REDIRECT --to-ports 15053',
    '-d 127.0.0.0/8 -j RETURN',
    '-p tcp -j REDIRECT --to-ports 15001',
  ]);
  t.true(text(outputRules({ ...BASE, dnsCapture: true }, 6)).includes('! -d ::1/128 -p tcp -m tcp --dport 53 -j REDIRECT --to-ports 15053'));
  t.false(text(outputRules(BASE, 4)).some((r) => r.includes('15053')), 'off by default');
  t.true(expectedChainListing({ ...BASE, dnsCapture: true }, 4).get('ZTUNNEL-OUTPUT')?.includes('-A ZTUNNEL-OUTPUT ! -o lo -p udp -m udp --dport 53 -j REDIRECT --to-ports 15053'), '`check` expects them');
});

test('--dns-capture with native nftables: the DNS redirects come before the TCP-only filter', (t) => {
  t.deepEqual(nftOutputRules({ ...BASE, proxyUid: null, dnsCapture: true }, [4, 6]), [
    'meta mark & 0x00000fff == 0x00000539 return',
    'oifname != "lo" udp dport 53 redirect to :15053',
    'ip daddr != 127.0.0.1 tcp dport 53 redirect to :15053',
    'ip6 daddr != ::1 tcp dport 53 redirect to :15053',
    'meta l4proto != tcp return',
    'ip daddr 127.0.0.0/8 return',
    'ip6 daddr ::1 return',
    'meta l4proto tcp redirect to :15001',
  ]);
});

test('the flag is DNS_CAPTURE / --dns-capture (bare), as the node proxy setting', (t) => {
  const { config } = loadConfig(REDIRECT_KEYS, {}, ['--dns-capture']);
  t.true(buildRedirectSpec(config).spec.dnsCapture);
  t.falsy(buildRedirectSpec(loadConfig(REDIRECT_KEYS, {}, []).config).spec.dnsCapture);
  t.true(buildRedirectSpec(loadConfig(REDIRECT_KEYS, { DNS_CAPTURE: 'true' }, []).config).spec.dnsCapture);
});
