import test from 'ava';
import { nextXdsRetry, XDS_INITIAL_BACKOFF_MS, XDS_MAX_BACKOFF_MS } from '../../../src/xds/backoff';
import type { TerminationReason } from '../../../src/xds/metrics';

const LIMITS = { initialMs: XDS_INITIAL_BACKOFF_MS, maxMs: XDS_MAX_BACKOFF_MS };

function run(terminations: readonly TerminationReason[]): number[] {
  let carry = LIMITS.initialMs;
  return terminations.map((t) => {
    const r = nextXdsRetry(carry, t, LIMITS);
    carry = r.carryMs;
    return r.waitMs;
  });
}

test('failures double before the first wait (20 ms), then keep doubling up to the 15 s cap', (t) => {
  const waits = run(Array.from({ length: 14 }, () => 'ConnectionError'));
  t.deepEqual(waits, [20, 40, 80, 160, 320, 640, 1280, 2560, 5120, 10240, 15000, 15000, 15000, 15000]);
});

test('gRPC errors (a refused token) grow the same schedule as connection errors', (t) => {
  t.deepEqual(run(['Error', 'ConnectionError', 'Error', 'Error']), [20, 40, 80, 160]);
});

test('a stream that ended normally reconnects after the initial delay and starts the schedule over; a completed one reconnects at once', (t) => {
  t.deepEqual(run(['ConnectionError', 'ConnectionError', 'ConnectionError', 'Reconnect', 'ConnectionError', 'Complete', 'Error']), [20, 40, 80, 10, 20, 0, 20]);
});
