import test from 'ava';
import { forwardedFor } from '../../../src/waypoint/request-context';

// The node proxy's CONNECT carries `forwarded: for="<ip>:<port>"`; remoteIpBlocks and the
// source-IP hash need the address alone.
const cases: [string | undefined, string | null][] = [
  ['for="10.1.2.3:45678"', '10.1.2.3'],
  ['for="10.1.2.3:45678";host=reviews.default.svc.cluster.local', '10.1.2.3'],
  ['for=10.1.2.3', '10.1.2.3'],
  ['for=10.1.2.3:80', '10.1.2.3'],
  ['for="[fd00::1]:8080"', 'fd00::1'],
  ['for="[fd00::1]"', 'fd00::1'],
  ['host=x;for="192.168.0.9:1", for=10.0.0.1', '192.168.0.9'],
  ['For="10.9.9.9:1"', '10.9.9.9'],
  ['for=_hidden', null],
  ['for=unknown', null],
  ['by=10.0.0.1', null],
  [undefined, null],
];

for (const [header, want] of cases) {
  test(`forwarded ${JSON.stringify(header)} → ${String(want)}`, (t) => {
    t.is(forwardedFor(header), want);
  });
}
