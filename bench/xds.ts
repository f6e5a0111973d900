/**
 * `npm run bench:xds [-- --workloads N --services N --policies N --deltas N]`
 *
 * The xDS push cost, measured on this machine: a dev control plane (in process, real gRPC
 * over TLS on loopback) serves N workloads + services + policies to one XdsSource writing
 * into a real StateUpdater. Reports the initial sync time, the event-loop stall it caused,
 * heap per workload, and the client-side cost of a one-workload delta (decode → translate →
 * apply), both end to end over the stream and as the in-process CPU cost.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { stringify } from 'yaml';
import { startDevControlPlane } from '../src/controlplane/dev-control-plane';
import { buildSnapshot } from '../src/controlplane/snapshot';
import { createLogger } from '../src/logging/logger';
import { createRegistry } from '../src/metrics/registry';
import { parseLocalConfig } from '../src/state/local-config';
import { StateUpdater } from '../src/state/proxy-state';
import type { Workload } from '../src/state/types';
import { workloadAddress } from '../src/xds/encode';
import { createXdsMetrics } from '../src/xds/metrics';
import { buildNode } from '../src/xds/node';
import { ADDRESS_TYPE, loadXdsCodec } from '../src/xds/proto';
import { decodeResource, isRejected } from '../src/xds/resources';
import { XdsSource } from '../src/xds/xds-source';

interface Sizes {
  workloads: number;
  services: number;
  policies: number;
  deltas: number;
}

function args(argv: string[]): Sizes {
  const s: Sizes = { workloads: 10_000, services: 2_000, policies: 500, deltas: 200 };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!.replace(/^--/, '') as keyof Sizes;
    if (!(k in s) || !/^\d+$/.test(argv[i + 1] ?? '')) throw new Error(`usage: bench:xds [--workloads N] [--services N] [--policies N] [--deltas N] (bad ${argv[i]})`);
    s[k] = Number(argv[++i]);
  }
  return s;
}

function ipOf(i: number, base: number): string {
  return `10.${base + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
}

/** A cluster-like file: workloads on 100 nodes, each an endpoint of one service, policies per namespace. */
function generate(n: Sizes): string {
  const ns = (i: number): string => `ns-${i % 50}`;
  const workloads = Array.from({ length: n.workloads }, (_, i) => ({
    uid: `Kubernetes//Pod/${ns(i)}/app-${i}`,
    name: `app-${i}`,
    namespace: ns(i),
    serviceAccount: `sa-${i % 200}`,
    trustDomain: 'cluster.local',
    workloadIps: [ipOf(i, 1)],
    protocol: 'HBONE',
    node: `node-${i % 100}`,
    canonicalName: `app-${i % n.services}`,
    canonicalRevision: 'v1',
    workloadName: `app-${i % n.services}`,
    workloadType: 'deployment',
    clusterId: 'Kubernetes',
    authorizationPolicies: n.policies > 0 ? [`${ns(i % n.policies)}/policy-${i % n.policies}`] : [],
    services: n.services > 0 ? { [`${ns(i % n.services)}/svc-${i % n.services}.${ns(i % n.services)}.svc.cluster.local`]: { 80: 8080 } } : {},
  }));
  const services = Array.from({ length: n.services }, (_, i) => ({
    name: `svc-${i}`,
    namespace: ns(i),
    hostname: `svc-${i}.${ns(i)}.svc.cluster.local`,
    vips: [`/${ipOf(i, 96)}`],
    ports: { 80: 8080 },
    subjectAltNames: [`spiffe://cluster.local/ns/${ns(i)}/sa/sa-${i % 200}`],
  }));
  const policies = Array.from({ length: n.policies }, (_, i) => ({
    name: `policy-${i}`,
    namespace: ns(i),
    scope: 'WorkloadSelector',
    action: i % 2 ? 'Deny' : 'Allow',
    dryRun: false,
    rules: [[[{ principals: [{ Exact: `cluster.local/ns/${ns(i)}/sa/sa-${i % 200}` }], destinationPorts: [8080] }]]],
  }));
  return stringify({ workloads, services, policies });
}

function heapMb(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().heapUsed / 1024 / 1024;
}

async function main(): Promise<void> {
  const n = args(process.argv.slice(2));
  if (!(globalThis as { gc?: () => void }).gc) process.stderr.write('note: run with node --expose-gc for exact heap figures (npm run bench:xds does)\n');
  const dir = mkdtempSync(join(tmpdir(), 'zt-bench-xds-'));
  const file = join(dir, 'served.yaml');
  writeFileSync(file, generate(n));
  // Warnings go to stderr; stdout carries only the result JSON.
  const logger = createLogger({ level: 'warn', format: 'json', destination: { write: (m: string) => void process.stderr.write(m) } });
  const cp = await startDevControlPlane({
    dir: join(dir, 'ca'),
    listenAddr: { host: '127.0.0.1', port: 0 },
    tokensPath: null,
    callers: [{ token: 'bench-xds-token', namespace: 'istio-system', serviceAccount: 'ztunnel', node: 'node-0' }],
    trustedNodeAccounts: ['istio-system/ztunnel'],
    localXdsPath: file,
    trustDomain: 'cluster.local',
    maxTtlMs: 3600_000,
    serverSans: ['127.0.0.1'],
    logger,
  });
  const codec = loadXdsCodec();
  const heapBefore = heapMb();
  const updater = new StateUpdater(logger);
  const source = new XdsSource({
    address: `https://${cp.address}`,
    rootCa: cp.rootCertPath,
    altHostname: null,
    authToken: 'bench-xds-token',
    clusterId: 'Kubernetes',
    headers: [],
    node: buildNode({ instanceIp: '127.0.0.1', podName: 'ztunnel-bench', podNamespace: 'istio-system', nodeName: 'node-0', meta: {}, metaJson: {} }),
    onDemand: false,
    codec,
    metrics: createXdsMetrics(createRegistry({ component: 'bench', processMetrics: false })),
    logger,
    writer: updater.source('xds'),
    state: updater.view,
  });
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  const t0 = process.hrtime.bigint();
  await source.start();
  await source.ready;
  const syncMs = Number(process.hrtime.bigint() - t0) / 1e6;
  loop.disable();
  const heapAfter = heapMb();
  const v = updater.view;
  if (v.allWorkloads().length !== n.workloads || v.allServices().length !== n.services || v.allPolicies().length !== n.policies) throw new Error('incomplete sync');

  // One-workload deltas end to end: the server pushes one changed workload, the client applies it.
  const parsed = parseLocalConfig(generate(n), 'bench');
  if (!parsed.ok) throw new Error('generated file does not parse');
  const base = buildSnapshot(codec, parsed.value);
  const e2e: number[] = [];
  for (let i = 0; i < n.deltas; i++) {
    const w = parsed.value.workloads[i % n.workloads] as Workload;
    const changed: Workload = { ...w, canonicalRevision: `v${i + 2}` };
    const value = codec.address.encode(workloadAddress(changed)).finish();
    const addresses = new Map(base.get(ADDRESS_TYPE)!);
    addresses.set(w.uid, { name: w.uid, version: `d${i}`, value, aliases: [], related: [] });
    const applied = new Promise<void>((resolve) => {
      const off = v.onChange(() => {
        off();
        resolve();
      });
    });
    const s = process.hrtime.bigint();
    cp.xds.update(new Map([...base, [ADDRESS_TYPE, addresses]]));
    await applied;
    e2e.push(Number(process.hrtime.bigint() - s) / 1e3);
  }

  // The same delta's client-side CPU cost, in process: decode the response, translate, apply.
  const w0 = parsed.value.workloads[0] as Workload;
  const writer = updater.source('xds');
  const bytes = [0, 1].map((k) =>
    codec.encodeResponse({
      system_version_info: 'b',
      type_url: ADDRESS_TYPE,
      nonce: `n${k}`,
      removed_resources: [],
      resources: [{ name: w0.uid, version: `c${k}`, resource: { type_url: ADDRESS_TYPE, value: codec.address.encode(workloadAddress({ ...w0, canonicalRevision: `c${k}` })).finish() } }],
    }),
  );
  const iterations = 5000;
  const cpu0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) {
    const res = codec.decodeResponse(bytes[i & 1]!);
    const d = decodeResource(codec, ADDRESS_TYPE, res.resources[0]!);
    if (isRejected(d) || d.kind !== 'workload') throw new Error('decode');
    writer.applyBatch({ workloads: { upsert: [d.workload] } });
  }
  const cpuUs = Number(process.hrtime.bigint() - cpu0) / 1e3 / iterations;

  await source.close();
  cp.destroy();
  rmSync(dir, { recursive: true, force: true });
  e2e.sort((a, b) => a - b);
  const pct = (p: number): number => e2e[Math.min(e2e.length - 1, Math.floor((p / 100) * e2e.length))]!;
  const out = {
    sizes: { workloads: n.workloads, services: n.services, policies: n.policies },
    initialSyncMs: Math.round(syncMs),
    eventLoopMaxStallMs: Math.round(loop.max / 1e6),
    heapMb: Math.round((heapAfter - heapBefore) * 10) / 10,
    heapBytesPerWorkload: Math.round(((heapAfter - heapBefore) * 1024 * 1024) / n.workloads),
    oneWorkloadDeltaEndToEndUs: { p50: Math.round(pct(50)), p90: Math.round(pct(90)), max: Math.round(e2e[e2e.length - 1]!) },
    oneWorkloadDeltaClientCpuUs: Math.round(cpuUs * 10) / 10,
    node: process.version,
  };
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:xds failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
