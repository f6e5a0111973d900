import test from 'ava';
import { parseListenAddr, parseSocketAddr, formatSocketAddr } from '../../../src/util/socket-addr';
import { canonicalIp, isLoopback } from '../../../src/util/ip';
import { parseDuration } from '../../../src/util/duration';
import { Backoff } from '../../../src/util/backoff';
import { ManualClock } from '../../../src/util/clock';

test('socket addresses: v4, bracketed v6, v4-mapped canonicalised, rejects hostnames and bad ports', (t) => {
  t.deepEqual(parseSocketAddr('10.0.0.1:8080'), { ip: '10.0.0.1', port: 8080, family: 4 });
  t.deepEqual(parseSocketAddr('[fd00::1]:443'), { ip: 'fd00::1', port: 443, family: 6 });
  t.deepEqual(parseSocketAddr('[::ffff:10.0.0.1]:80'), { ip: '10.0.0.1', port: 80, family: 4 });
  for (const bad of ['example.com:80', '10.0.0.1', '10.0.0.1:0', '10.0.0.1:70000', 'fd00::1:80', '[fd00::1]80', '', ':80']) t.is(parseSocketAddr(bad), null, bad);
  t.is(formatSocketAddr({ ip: 'fd00::1', port: 15008 }), '[fd00::1]:15008');
  t.is(canonicalIp('::FFFF:127.0.0.1'), '127.0.0.1');
  // One canonical form everywhere: a SocketAddr equals the state's index key for any spelling.
  t.is(canonicalIp('FD00:0:0::0001'), 'fd00::1');
  t.deepEqual(parseSocketAddr('[FD00:0::1]:80'), { ip: 'fd00::1', port: 80, family: 6 });
  t.is(canonicalIp('example.com'), null);
  for (const ip of ['127.0.0.1', '127.9.8.7', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1']) t.true(isLoopback(ip), ip);
  for (const ip of ['10.0.0.1', '::2', 'fd00::1', 'not-an-ip']) t.false(isLoopback(ip), ip);
});

test('listen addresses: host-less, wildcard, port 0', (t) => {
  t.deepEqual(parseListenAddr(':15008'), { host: null, port: 15008 });
  t.deepEqual(parseListenAddr('[::]:15020'), { host: '::', port: 15020 });
  t.deepEqual(parseListenAddr('127.0.0.1:0'), { host: '127.0.0.1', port: 0 });
  t.deepEqual(parseListenAddr('localhost:15000'), { host: 'localhost', port: 15000 });
  t.is(parseListenAddr('example.com:1'), null);
  t.is(parseListenAddr('1.2.3.4:99999'), null);
});

test('durations in ztunnel syntax', (t) => {
  t.is(parseDuration('500ms'), 500);
  t.is(parseDuration('10s'), 10_000);
  t.is(parseDuration('1h30m'), 5_400_000);
  t.is(parseDuration('24h'), 86_400_000);
  t.is(parseDuration('5'), 5000);
  t.is(parseDuration('5x'), null);
  t.is(parseDuration('s'), null);
});

test('backoff grows, caps, jitters within bounds, resets', (t) => {
  const b = new Backoff({ initialMs: 1000, maxMs: 150_000, jitter: 0.2, random: () => 0.5 });
  const seq = Array.from({ length: 10 }, () => b.next());
  t.deepEqual(seq.slice(0, 4), [1000, 2000, 4000, 8000]);
  t.is(seq[9], 150_000);
  const lo = new Backoff({ initialMs: 1000, maxMs: 10_000, jitter: 0.2, random: () => 0 });
  t.is(lo.next(), 800);
  b.reset();
  t.is(b.next(), 1000);
});

test('manual clock fires timers in order, including ones scheduled by timers', (t) => {
  const c = new ManualClock(0);
  const fired: string[] = [];
  c.setTimeout(() => fired.push('b'), 20);
  c.setTimeout(() => {
    fired.push('a');
    c.setTimeout(() => fired.push('c'), 15);
  }, 10);
  const h = c.setTimeout(() => fired.push('never'), 5);
  c.clearTimeout(h);
  c.advance(30);
  t.deepEqual(fired, ['a', 'b', 'c']);
  t.is(c.now(), 30);
});
