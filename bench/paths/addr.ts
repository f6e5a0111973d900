/**
 * Bench loopback addresses: 127.230.X.Y, with X derived from the harness PID so two runs
 * (e.g. the selftest and a real run) never share the fixed per-workload ports the mesh
 * binds (15001/15006/15008). 127.230/16 is outside the blocks the test helpers hand out.
 */
export function benchAddr(pathBlock: number, host: number): string {
  const slot = process.pid % 32;
  return `127.230.${slot * 8 + pathBlock}.${host}`;
}
