import test from 'ava';
import { FetchQueue } from '../../../src/identity/fetch-queue';

test('realtime > warmup > background, FIFO within a priority', (t) => {
  const q = new FetchQueue<string>();
  q.push('b1', 'background');
  q.push('w1', 'warmup');
  q.push('b2', 'background');
  q.push('r1', 'realtime');
  q.push('w2', 'warmup');
  t.is(q.size, 5);
  t.deepEqual([q.shift(), q.shift(), q.shift(), q.shift(), q.shift(), q.shift()], ['r1', 'w1', 'w2', 'b1', 'b2', undefined]);
});

test('an item is queued once; a higher priority moves it forward, a lower one does not', (t) => {
  const q = new FetchQueue<string>();
  q.push('a', 'warmup');
  q.push('b', 'warmup');
  t.is(q.push('b', 'realtime'), 'realtime');
  t.is(q.push('a', 'background'), 'warmup');
  t.is(q.size, 2);
  t.is(q.shift(), 'b');
  t.is(q.shift(), 'a');
  q.push('c', 'background');
  q.remove('c');
  t.false(q.has('c'));
  t.is(q.shift(), undefined);
});
