import test from 'ava';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseLocalConfig } from '../../../src/state/local-config';
import { encodeAuthorization, serviceAddress, workloadAddress } from '../../../src/xds/encode';
import { buildNode } from '../../../src/xds/node';
import { ADDRESS_TYPE, AUTHORIZATION_TYPE, loadXdsCodec, PROTO_FILES } from '../../../src/xds/proto';
import { decodeResource } from '../../../src/xds/resources';

// Interop: protoc (Debian's protobuf-compiler) decodes what our code encodes against the
// vendored .proto files, and encodes text our decoder must read back to the same domain
// objects. protoc is an independent protobuf implementation, so field numbers, wire types
// and enum values are checked by something other than protobufjs.
const ROOT = resolve(__dirname, '../../../..');
const PROTO = join(ROOT, 'proto');
const FIX = join(ROOT, 'test/fixtures/xds');

function hasProtoc(): boolean {
  try {
    execFileSync('protoc', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function protoc(mode: '--decode' | '--encode', type: string, input: Buffer | string): Buffer {
  return execFileSync('protoc', [`-I${PROTO}`, `${mode}=${type}`, PROTO_FILES.workload, PROTO_FILES.authorization, PROTO_FILES.discovery], { input });
}

// CI installs protobuf-compiler (.ci/run); elsewhere these show as skipped.
const withProtoc = hasProtoc() ? test : test.skip;
const codec = loadXdsCodec(PROTO);
const cfg = (() => {
  const r = parseLocalConfig(readFileSync(join(FIX, 'golden.yaml'), 'utf8'), 'golden.yaml');
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.value;
})();

const cases = [
  { name: 'workload', type: 'istio.workload.Address', url: ADDRESS_TYPE, golden: 'workload.golden.txt', bytes: () => codec.address.encode(workloadAddress(cfg.workloads[0]!)).finish(), domain: { kind: 'workload', value: cfg.workloads[0] } },
  { name: 'service', type: 'istio.workload.Address', url: ADDRESS_TYPE, golden: 'service.golden.txt', bytes: () => codec.address.encode(serviceAddress(cfg.services[0]!)).finish(), domain: { kind: 'service', value: cfg.services[0] } },
  { name: 'authorization', type: 'istio.security.Authorization', url: AUTHORIZATION_TYPE, golden: 'authorization.golden.txt', bytes: () => codec.authorization.encode(encodeAuthorization(cfg.policies[0]!)).finish(), domain: { kind: 'policy', value: cfg.policies[0] } },
] as const;

for (const c of cases) {
  withProtoc(`protoc decodes our ${c.name} encoding to the golden text`, (t) => {
      const text = protoc('--decode', c.type, Buffer.from(c.bytes())).toString('utf8');
    t.is(text, readFileSync(join(FIX, c.golden), 'utf8'));
  });

  withProtoc(`a ${c.name} encoded by protoc from the golden text translates to the same domain object`, (t) => {
      const bytes = protoc('--encode', c.type, readFileSync(join(FIX, c.golden), 'utf8'));
    const r = decodeResource(codec, c.url, { name: 'x', version: '1', resource: { type_url: c.url, value: bytes } });
    t.true('kind' in r, JSON.stringify(r));
    if (!('kind' in r)) return;
    t.is(r.kind, c.domain.kind);
    const got = r.kind === 'workload' ? r.workload : r.kind === 'service' ? r.service : r.policy;
    t.deepEqual(got, c.domain.value as unknown);
  });
}

withProtoc('the initial on-demand Address request with node id, metadata and known versions decodes as ztunnel sends it', (t) => {
  const node = buildNode({ instanceIp: '10.0.0.7', podName: 'ztunnel-x1', podNamespace: 'istio-system', nodeName: 'node-a', meta: { CLUSTER_ID: 'Kubernetes' }, metaJson: { PROXY_CONFIG: { holdApplication: true } } });
  const bytes = codec.encodeRequest({ node, type_url: ADDRESS_TYPE, resource_names_subscribe: ['*'], resource_names_unsubscribe: ['*'], initial_resource_versions: { 'Kubernetes//Pod/default/a': '7' } });
  const text = protoc('--decode', 'envoy.service.discovery.v3.DeltaDiscoveryRequest', bytes).toString('utf8');
  t.is(text, readFileSync(join(FIX, 'request.golden.txt'), 'utf8'));
});

withProtoc('a NACK carries error_detail (field 7) with the rejected resources', (t) => {
  const bytes = codec.encodeRequest({ type_url: AUTHORIZATION_TYPE, response_nonce: 'n1', error_detail: { message: 'default/bad: authorization.action: unknown enum value 7' } });
  const text = protoc('--decode', 'envoy.service.discovery.v3.DeltaDiscoveryRequest', bytes).toString('utf8');
  t.is(text, `type_url: "${AUTHORIZATION_TYPE}"\nresponse_nonce: "n1"\nerror_detail {\n  message: "default/bad: authorization.action: unknown enum value 7"\n}\n`);
});

test('translation rejects bad resources naming the field', (t) => {
  const bad = codec.address.encode({ workload: { uid: 'u1', name: 'n', namespace: 'default', addresses: [Buffer.from([10, 0, 0])] } }).finish();
  const r = decodeResource(codec, ADDRESS_TYPE, { name: 'u1', version: '1', resource: { type_url: ADDRESS_TYPE, value: bad } });
  t.deepEqual(r, { name: 'u1', reason: 'workload.addresses[0]: 3 bytes is not an IP address (expected 4 or 16)' });
  const legacy = codec.address.encode({ workload: { uid: 'u2', name: 'n', namespace: 'default', tunnel_protocol: 2 } }).finish();
  t.deepEqual(decodeResource(codec, ADDRESS_TYPE, { name: 'u2', version: '1', resource: { type_url: ADDRESS_TYPE, value: legacy } }), { name: 'u2', reason: 'workload.tunnel_protocol: LEGACY_ISTIO_MTLS is not supported' });
  const wrongType = decodeResource(codec, ADDRESS_TYPE, { name: 'p', version: '1', resource: { type_url: AUTHORIZATION_TYPE, value: Buffer.alloc(0) } });
  t.deepEqual(wrongType, { name: 'p', reason: `payload type ${AUTHORIZATION_TYPE} in a ${ADDRESS_TYPE} response` });
  const garbage = decodeResource(codec, AUTHORIZATION_TYPE, { name: 'g', version: '1', resource: { type_url: AUTHORIZATION_TYPE, value: Buffer.from([0x0a, 0xff]) } });
  t.true('reason' in garbage && garbage.reason.startsWith('decode: '), JSON.stringify(garbage));
});
