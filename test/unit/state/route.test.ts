import test from 'ava';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { parseLocalConfig } from '../../../src/state/local-config';
import { StateUpdater } from '../../../src/state/proxy-state';
import { buildOutboundRoute, resolveInboundTarget, type OutboundRoute } from '../../../src/state/route';
import { makeSocketAddr, formatSocketAddr } from '../../../src/util/socket-addr';
import type { Workload } from '../../../src/state/types';
import { fixturesDir, seeded, svc, wl, loopbackConfig } from './builders';

const ILLEGAL = new Set([15001, 15006, 15008]);

function mesh(): StateUpdater {
  const r = parseLocalConfig(readFileSync(path.join(fixturesDir, 'mesh.yaml'), 'utf8'), 'mesh.yaml');
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  const u = new StateUpdater();
  u.source('test').replaceAll(r.value);
  return u;
}

function byUid(u: StateUpdater, name: string): Workload {
  const w = u.view.allWorkloads().find((x) => x.name === name);
  if (!w) throw new Error(name);
  return w;
}

function route(u: StateUpdater, from: string, dst: string, extra: { srcIp?: string; random?: () => number; localIps?: Set<string> } = {}): OutboundRoute {
  const [ip, port] = dst.startsWith('[') ? [dst.slice(1, dst.indexOf(']')), dst.slice(dst.indexOf(']') + 2)] : (dst.split(':') as [string, string]);
  return buildOutboundRoute(u.view, { srcWorkload: byUid(u, from), dst: makeSocketAddr(ip, Number(port)), network: '', illegalPorts: ILLEGAL, random: extra.random ?? seeded(1), ...extra });
}

/** The route without object identities, for compact assertions. */
function summary(r: OutboundRoute): Record<string, unknown> {
  switch (r.kind) {
    case 'hbone':
      return { kind: r.kind, nextHop: formatSocketAddr(r.nextHop), authority: r.authority, sans: r.expectedIdentities, dest: r.destWorkload.name, service: r.destService?.name ?? null, viaWaypoint: r.viaWaypoint, targetPort: r.targetPort };
    case 'tcp':
      return { kind: r.kind, nextHop: formatSocketAddr(r.nextHop), dest: r.destWorkload.name, service: r.destService?.name ?? null };
    case 'passthrough':
      return { kind: r.kind, nextHop: formatSocketAddr(r.nextHop), service: r.destService?.name ?? null };
    case 'error':
      return { kind: r.kind, reason: r.reason, message: r.message };
  }
}

test('service VIP without waypoint: load-balanced HBONE to podIP:15008, authority podIP:targetPort, SANs = identity + service SANs', (t) => {
  const u = mesh();
  // Failover on Region/Zone: the client is in eu-1a, so cart-1 (eu-1a) every time; legacy is unhealthy.
  for (let i = 0; i < 20; i++) {
    t.deepEqual(summary(route(u, 'client', '10.96.0.10:80', { random: seeded(i) })), {
      kind: 'hbone',
      nextHop: '10.0.1.1:15008',
      authority: '10.0.1.1:8080',
      sans: ['spiffe://cluster.local/ns/shop/sa/cart', 'spiffe://cluster.local/ns/shop/sa/cart-san'],
      dest: 'cart-1',
      service: 'cart',
      viaWaypoint: false,
      targetPort: 8080,
    });
  }
});

test('IPv6 service VIP picks the endpoint\'s IPv6 address and brackets the authority', (t) => {
  const r = summary(route(mesh(), 'client', '[fd00:96::10]:80'));
  t.like(r, { kind: 'hbone', nextHop: '[fd00::1:1]:15008', authority: '[fd00::1:1]:8080', dest: 'cart-1' });
});

test('service with a waypoint: HBONE to the waypoint, authority = VIP:port as dialled, SANs = waypoint identity + waypoint service SANs', (t) => {
  t.deepEqual(summary(route(mesh(), 'client', '10.96.0.11:80')), {
    kind: 'hbone',
    nextHop: '10.0.3.1:15008',
    authority: '10.96.0.11:80',
    sans: ['spiffe://cluster.local/ns/shop/sa/waypoint', 'spiffe://cluster.local/ns/shop/sa/waypoint-san'],
    dest: 'waypoint',
    service: 'cart-via-waypoint',
    viaWaypoint: true,
    targetPort: 80,
  });
});

test('pod IP with a workload waypoint goes through it; authority = podIP:port', (t) => {
  const r = route(mesh(), 'client', '10.0.4.1:5432');
  t.like(summary(r), { kind: 'hbone', nextHop: '10.0.3.1:15008', authority: '10.0.4.1:5432', dest: 'waypoint', viaWaypoint: true });
  t.is(r.kind === 'hbone' ? r.finalWorkload?.name : null, 'db');
  t.is(r.kind === 'hbone' ? r.waypoint?.boundTo : null, 'workload');
});

test('the waypoint itself (identity AND IP) goes direct to the pod', (t) => {
  const u = mesh();
  t.like(summary(route(u, 'waypoint', '10.0.4.1:5432')), { kind: 'hbone', nextHop: '10.0.4.1:15008', authority: '10.0.4.1:5432', dest: 'db', viaWaypoint: false });
  // Same identity from another IP is not the waypoint: still sent through it.
  u.source('test').applyBatch({ workloads: { upsert: [wl('imposter', { namespace: 'shop', serviceAccount: 'waypoint', workloadIps: ['10.0.9.9'] })] } });
  t.like(summary(route(u, 'imposter', '10.0.4.1:5432')), { viaWaypoint: true, dest: 'waypoint' });
  // …and the waypoint's identity check: its IP but the source named with another identity.
  t.like(summary(route(u, 'client', '10.0.4.1:5432', { srcIp: '10.0.3.1' })), { viaWaypoint: true });
});

test('service-addressed traffic skips the endpoint\'s workload waypoint', (t) => {
  const u = mesh();
  const dbSvc = svc('shop', 'db.shop.svc.cluster.local', { vips: [{ network: '', ip: '10.96.0.20', prefixLen: 32 }], ports: { 5432: 5432 } });
  const db = byUid(u, 'db');
  u.source('test').applyBatch({ services: { upsert: [dbSvc] }, workloads: { upsert: [{ ...db, services: { 'shop/db.shop.svc.cluster.local': { 5432: 5432 } } }] } });
  t.like(summary(route(u, 'client', '10.96.0.20:5432')), { kind: 'hbone', nextHop: '10.0.4.1:15008', authority: '10.0.4.1:5432', dest: 'db', viaWaypoint: false, service: 'db' });
});

test('TCP destination: plain TCP to podIP:targetPort', (t) => {
  t.deepEqual(summary(route(mesh(), 'client', '10.0.2.1:9090')), { kind: 'tcp', nextHop: '10.0.2.1:9090', dest: 'legacy', service: null });
});

test('loopback demo: HBONE vs TCP by destination protocol, service target port mapping', (t) => {
  const r = parseLocalConfig(readFileSync(loopbackConfig, 'utf8'), 'loopback.yaml');
  if (!r.ok) return t.fail();
  const u = new StateUpdater();
  u.source('test').replaceAll(r.value);
  const srcW = u.view.allWorkloads()[0]!;
  const go = (dst: string, rnd: () => number) => buildOutboundRoute(u.view, { srcWorkload: srcW, dst: makeSocketAddr(dst.split(':')[0]!, Number(dst.split(':')[1])), network: '', illegalPorts: ILLEGAL, random: rnd });
  t.like(summary(go('127.0.0.2:8080', seeded(1))), { kind: 'tcp', nextHop: '127.0.0.2:8080', dest: 'loop-tcp' });
  t.like(summary(go('127.0.0.1:8080', seeded(1))), { kind: 'hbone', nextHop: '127.0.0.1:15008', authority: '127.0.0.1:8080' });
  const kinds = new Set<string>();
  const rnd = seeded(9);
  for (let i = 0; i < 50; i++) {
    const s = summary(go('127.10.0.1:80', rnd));
    kinds.add(`${s['kind']}→${s['nextHop']}`);
  }
  t.deepEqual([...kinds].sort(), ['hbone→127.0.0.1:15008', 'tcp→127.0.0.2:8080'], 'both endpoints of echo.demo.svc, port 80 → 8080');
  // echo-remote's VIP is on network "elsewhere": not visible from network "".
  t.like(summary(go('127.10.0.2:80', seeded(1))), { kind: 'passthrough', nextHop: '127.10.0.2:80' });
});

test('unknown destination → passthrough to the original destination', (t) => {
  t.deepEqual(summary(route(mesh(), 'client', '93.184.216.34:443')), { kind: 'passthrough', nextHop: '93.184.216.34:443', service: null });
});

test('Passthrough LB mode → passthrough; Namespace visibility hides it from other namespaces', (t) => {
  const u = mesh();
  t.deepEqual(summary(route(u, 'client', '203.0.113.7:443')), { kind: 'passthrough', nextHop: '203.0.113.7:443', service: 'external' });
  t.deepEqual(summary(route(u, 'hostnet', '203.0.113.7:443')), { kind: 'passthrough', nextHop: '203.0.113.7:443', service: null });
});

test('no healthy upstream: service without endpoints, or a port the service lacks', (t) => {
  const u = mesh();
  u.source('test').applyBatch({ services: { upsert: [svc('shop', 'empty', { vips: [{ network: '', ip: '10.96.0.99', prefixLen: 32 }], ports: { 80: 80 } })] } });
  t.deepEqual(summary(route(u, 'client', '10.96.0.99:80')), { kind: 'error', reason: 'NO_HEALTHY_UPSTREAM', message: 'service shop/empty has no endpoints' });
  t.deepEqual(summary(route(u, 'client', '10.96.0.10:443')), { kind: 'error', reason: 'NO_HEALTHY_UPSTREAM', message: 'service shop/cart.shop.svc.cluster.local has no port 443' });
  u.source('test').applyBatch({ workloads: { upsert: [{ ...byUid(u, 'cart-1'), status: 'Unhealthy' }, { ...byUid(u, 'cart-2'), status: 'Unhealthy' }] } });
  t.like(summary(route(u, 'client', '10.96.0.10:80')), { kind: 'error', reason: 'NO_HEALTHY_UPSTREAM', message: 'service shop/cart.shop.svc.cluster.local: all 3 endpoints are unhealthy' });
});

test('self-call: loopback or local destination on one of our own ports', (t) => {
  const u = mesh();
  t.deepEqual(summary(route(u, 'client', '127.0.0.1:15008')), { kind: 'error', reason: 'SELF_CALL', message: "destination 127.0.0.1:15008 is this proxy's own port 15008" });
  t.like(summary(route(u, 'client', '[::1]:15001')), { kind: 'error', reason: 'SELF_CALL' });
  t.like(summary(route(u, 'client', '127.0.0.1:8080')), { kind: 'passthrough' }, 'loopback on an app port is fine');
  t.like(summary(route(u, 'client', '10.0.0.1:15006', { localIps: new Set(['10.0.0.1']) })), { kind: 'error', reason: 'SELF_CALL' });
});

test('weighted waypoints split by weight', (t) => {
  const u = mesh();
  const wp2 = wl('wp2', { namespace: 'shop', serviceAccount: 'waypoint2', workloadIps: ['10.0.3.2'] });
  const s = svc('shop', 'canary', {
    vips: [{ network: '', ip: '10.96.0.30', prefixLen: 32 }],
    ports: { 80: 80 },
    weightedWaypoints: [
      { destination: { kind: 'address', network: '', ip: '10.0.3.1', hboneMtlsPort: 15008 }, weight: 1 },
      { destination: { kind: 'address', network: '', ip: '10.0.3.2', hboneMtlsPort: 15008 }, weight: 3 },
    ],
  });
  u.source('test').applyBatch({ workloads: { upsert: [wp2] }, services: { upsert: [s] } });
  const rnd = seeded(11);
  let second = 0;
  const N = 4000;
  for (let i = 0; i < N; i++) {
    const r = route(u, 'client', '10.96.0.30:80', { random: rnd });
    if (r.kind === 'hbone' && r.destWorkload.uid === 'wp2') second++;
  }
  t.log(`canary waypoint share: ${((second / N) * 100).toFixed(1)}% (expected 75%)`);
  t.true(Math.abs(second / N - 0.75) < 0.03);
});

test('waypoint that is not in the state → UNKNOWN_WAYPOINT', (t) => {
  const u = mesh();
  u.source('test').applyBatch({ services: { upsert: [svc('shop', 'lost', { vips: [{ network: '', ip: '10.96.0.40', prefixLen: 32 }], ports: { 80: 80 }, waypoint: { kind: 'address', network: '', ip: '10.9.9.9', hboneMtlsPort: 15008 } })] } });
  t.deepEqual(summary(route(u, 'client', '10.96.0.40:80')), { kind: 'error', reason: 'UNKNOWN_WAYPOINT', message: 'waypoint address /10.9.9.9 is neither a known workload nor a service VIP' });
});

test('a waypoint given by address may be the waypoint Service VIP (load-balanced over its pods)', (t) => {
  const u = mesh();
  u.source('test').applyBatch({ services: { upsert: [svc('shop', 'by-vip', { vips: [{ network: '', ip: '10.96.0.41', prefixLen: 32 }], ports: { 80: 80 }, waypoint: { kind: 'address', network: '', ip: '10.96.0.15', hboneMtlsPort: 15008 } })] } });
  t.like(summary(route(u, 'client', '10.96.0.41:80')), { kind: 'hbone', nextHop: '10.0.3.1:15008', authority: '10.96.0.41:80', dest: 'waypoint', viaWaypoint: true, sans: ['spiffe://cluster.local/ns/shop/sa/waypoint', 'spiffe://cluster.local/ns/shop/sa/waypoint-san'] });
});

test('a Service waypoint applies even to traffic from the waypoint itself (only workload waypoints have that exception)', (t) => {
  t.like(summary(route(mesh(), 'waypoint', '10.96.0.11:80')), { kind: 'hbone', viaWaypoint: true, dest: 'waypoint' });
});

// ---- inbound

function inbound(u: StateUpdater, local: string, authority: string) {
  const w = byUid(u, local);
  return resolveInboundTarget(u.view, { localWorkload: w, localIp: w.workloadIps[0]!, authority, network: '', illegalPorts: ILLEGAL });
}

test('inbound: own IP authority → local pod at that port, candidate services = the workload\'s', (t) => {
  const r = inbound(mesh(), 'cart-1', '10.0.1.1:8080');
  t.true(r.kind === 'target');
  if (r.kind !== 'target') return;
  t.is(r.ip, '10.0.1.1');
  t.is(r.targetPort, 8080);
  t.deepEqual(r.services.map((s) => s.name), ['cart']);
  t.is(r.asWaypointFor, null);
});

test('inbound: another pod\'s IP → UNKNOWN_DESTINATION (400); our own port → ILLEGAL_PORT (503)', (t) => {
  const u = mesh();
  t.like(inbound(u, 'cart-1', '10.0.1.2:8080'), { kind: 'error', reason: 'UNKNOWN_DESTINATION' });
  t.like(inbound(u, 'cart-1', '10.0.1.1:15008'), { kind: 'error', reason: 'ILLEGAL_PORT', message: "target port 15008 is one of this proxy's own ports" });
  t.like(inbound(u, 'cart-1', 'not an authority'), { kind: 'error', reason: 'BAD_REQUEST' });
});

test('inbound at the waypoint: authority = a service VIP or a pod it is the waypoint for', (t) => {
  const u = mesh();
  t.like(inbound(u, 'waypoint', '10.96.0.11:80'), { kind: 'target', ip: '10.0.3.1', targetPort: 80, asWaypointFor: 'service' });
  t.like(inbound(u, 'waypoint', '10.0.4.1:5432'), { kind: 'target', ip: '10.0.3.1', targetPort: 5432, asWaypointFor: 'workload' });
  t.like(inbound(u, 'waypoint', '10.96.0.10:80'), { kind: 'error', reason: 'UNKNOWN_DESTINATION' }, 'cart has no waypoint');
});

test('inbound: application tunnel accepts any authority IP; hostname authority maps service port to target port', (t) => {
  const u = mesh();
  t.like(inbound(u, 'db', '10.96.0.77:5432'), { kind: 'target', targetPort: 5432 });
  const r = inbound(u, 'cart-1', 'cart.shop.svc.cluster.local:80');
  t.like(r, { kind: 'target', targetPort: 8080 });
  if (r.kind === 'target') t.deepEqual(r.services.map((s) => s.name), ['cart']);
  t.like(inbound(u, 'cart-1', 'nope.shop.svc.cluster.local:80'), { kind: 'error', reason: 'UNKNOWN_SERVICE' });
  t.like(inbound(u, 'cart-1', 'cart.shop.svc.cluster.local:81'), { kind: 'error', reason: 'UNKNOWN_SERVICE' });
});

test('inbound: the local workload is looked up by the local IP when not given', (t) => {
  const u = mesh();
  t.like(resolveInboundTarget(u.view, { localWorkload: null, localIp: '10.0.1.2', authority: '10.0.1.2:8080', network: '', illegalPorts: ILLEGAL }), { kind: 'target', targetPort: 8080 });
  t.like(resolveInboundTarget(u.view, { localWorkload: null, localIp: '10.9.9.9', authority: '10.9.9.9:80', network: '', illegalPorts: ILLEGAL }), { kind: 'error', reason: 'LOCAL_WORKLOAD_UNKNOWN' });
});
