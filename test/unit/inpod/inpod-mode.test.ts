/** In-pod mode's listener split: host-less addresses become per-pod listeners, explicit ones stay fixed. */
import test from 'ava';
import { splitInpodAddrs } from '../../../src/inpod/inpod-mode';

test('host-less listener addresses go into every pod; addresses with a host and SOCKS5 stay fixed listeners', (t) => {
  const r = splitInpodAddrs({
    outbound: { host: null, port: 15001 },
    inboundPlaintext: { host: null, port: 15006 },
    inbound: { host: '0.0.0.0', port: 15008 },
    socks5: { host: '127.0.0.1', port: 15080 },
  });
  t.deepEqual(r.pod, [
    { name: 'outbound', port: 15001 },
    { name: 'inbound_plaintext', port: 15006 },
  ]);
  t.deepEqual(r.fixed, { outbound: null, inboundPlaintext: null, inbound: { host: '0.0.0.0', port: 15008 }, socks5: { host: '127.0.0.1', port: 15080 } });
  t.deepEqual(splitInpodAddrs({ outbound: null, inboundPlaintext: null, inbound: null, socks5: null }).pod, [], 'a disabled listener is in no pod');
});
