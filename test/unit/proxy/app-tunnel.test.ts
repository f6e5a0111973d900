import test from 'ava';
import { appTunnelDelivery, encodeProxyV2 } from '../../../src/proxy/app-tunnel';
import type { Workload } from '../../../src/state/types';
import { SpiffeId } from '../../../src/identity/spiffe';
import { makeSocketAddr } from '../../../src/util/socket-addr';
import { workload } from '../../helpers/workloads';
import { decodeWithPython, pythonSkipReason } from '../../helpers/proxy-v2';

const wl = (p: Partial<Workload>): Workload => workload({ name: 'api', ip: '10.0.0.5', node: 'n1', ...p });
const ID = SpiffeId.of('cluster.local', 'shop', 'frontend');
const skip = pythonSkipReason();
const check = skip === null ? test : test.skip;

check('IPv4: a header the spec-written reader decodes: PROXY, TCP over IPv4, both addresses, the identity TLV', (t) => {
  const w = wl({ applicationTunnel: { protocol: 'PROXY', port: 15088 } });
  const d = appTunnelDelivery(w, makeSocketAddr('10.0.0.5', 8080), makeSocketAddr('10.0.1.9', 41000), makeSocketAddr('10.0.0.5', 8080), ID)!;
  t.deepEqual(d.target, makeSocketAddr('10.0.0.5', 15088));
  const info = decodeWithPython(Buffer.concat([d.header!, Buffer.from('GET / HTTP/1.1\r\n')]));
  t.deepEqual(info, {
    version: 2,
    command: 'PROXY',
    family: 'INET',
    transport: 'STREAM',
    src: '10.0.1.9:41000',
    dst: '10.0.0.5:8080',
    tlvs: { '0xd0': 'spiffe://cluster.local/ns/shop/sa/frontend' },
    rest: 'GET / HTTP/1.1\r\n',
  });
});

check('IPv6, and mixed families as IPv4-mapped IPv6 (the header has one family)', (t) => {
  const v6 = decodeWithPython(encodeProxyV2(makeSocketAddr('fd00::9', 41000), makeSocketAddr('fd00::5', 8080)));
  t.like(v6, { family: 'INET6', src: '[fd00::9]:41000', dst: '[fd00::5]:8080', tlvs: {}, rest: '' });
  const mixed = decodeWithPython(encodeProxyV2(makeSocketAddr('10.0.1.9', 41000), makeSocketAddr('fd00::5', 8080)));
  t.like(mixed, { family: 'INET6', src: '[::ffff:10.0.1.9]:41000', dst: '[fd00::5]:8080' });
  t.is(mixed.error, undefined);
});

test('no tunnel: no delivery; NONE: only the port moves; a tunnel without a port keeps the requested one', (t) => {
  const target = makeSocketAddr('10.0.0.5', 8080);
  const peer = makeSocketAddr('10.0.1.9', 41000);
  t.is(appTunnelDelivery(wl({}), target, peer, target, ID), null);
  t.deepEqual(appTunnelDelivery(wl({ applicationTunnel: { protocol: 'NONE', port: 9000 } }), target, peer, target, ID), { target: makeSocketAddr('10.0.0.5', 9000), header: null });
  const d = appTunnelDelivery(wl({ applicationTunnel: { protocol: 'PROXY', port: null } }), target, peer, target, ID)!;
  t.deepEqual(d.target, target);
  t.is(d.header!.subarray(0, 12).toString('latin1'), '\r\n\r\n\0\r\nQUIT\n');
});
