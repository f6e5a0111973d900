/**
 * Unique loopback /24 blocks for tests that bind per-workload addresses (e.g. x.y.z.10:15008):
 * ava runs test files in parallel processes, so each (pid, counter) gets its own block in
 * 127.0.0.0/8 and fixed ports never collide. Only loopback; never any other range.
 */
let counter = 0;

export function loopbackBlock(): (host: number) => string {
  counter++;
  const a = 16 + (process.pid % 200);
  const b = (counter * 7 + (process.pid >> 8)) % 250;
  return (host: number) => `127.${a}.${b}.${host}`;
}
