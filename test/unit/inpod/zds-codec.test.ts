/**
 * The ZDS codec against the vendored proto (protobufjs) and against bytes encoded by an
 * independent implementation: Debian's protoc compiles the same .proto and its encoder's
 * output must decode to the same request (and ours to the same bytes).
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { ZdsCodec, ZDS_V1 } from '../../../src/inpod/zds-codec';

const codec = new ZdsCodec();
const PROTO_ROOT = path.resolve(__dirname, '../../../../proto');

function protocEncode(type: string, text: string): Buffer | null {
  try {
    return execFileSync('protoc', [`--proto_path=${PROTO_ROOT}`, `--encode=istio.workload.zds.${type}`, 'istio/workload/zds/zds.proto'], { input: text });
  } catch {
    return null;
  }
}

test('every request kind round-trips; the hello says V1 and the ack carries the error', (t) => {
  const add = { kind: 'add', uid: 'u1', info: { name: 'a1', namespace: 'default', serviceAccount: 'sa1' } } as const;
  t.deepEqual(codec.decodeRequest(codec.encodeRequest(add), 1), add);
  t.deepEqual(codec.decodeRequest(codec.encodeRequest({ kind: 'keep', uid: 'u2' }), 0), { kind: 'keep', uid: 'u2' });
  t.deepEqual(codec.decodeRequest(codec.encodeRequest({ kind: 'del', uid: 'u3' }), 0), { kind: 'del', uid: 'u3' });
  t.deepEqual(codec.decodeRequest(codec.encodeRequest({ kind: 'snapshot_sent' }), 0), { kind: 'snapshot_sent' });
  t.is(codec.decodeHello(codec.encodeHello()), ZDS_V1);
  t.deepEqual([...codec.encodeHello()], [0x08, 0x01]);
  t.is(codec.decodeAck(codec.encodeAck('boom')), 'boom');
  t.is(codec.decodeAck(codec.encodeAck()), '');
});

test('descriptor rules and malformed input are named', (t) => {
  const add = codec.encodeRequest({ kind: 'add', uid: 'u1', info: { name: 'a', namespace: 'n', serviceAccount: 's' } });
  t.throws(() => codec.decodeRequest(add, 0), { message: 'add for uid "u1" carried 0 descriptors; exactly one (the pod\'s network namespace) is required' });
  t.throws(() => codec.decodeRequest(add, 2), { message: /carried 2 descriptors/ });
  t.throws(() => codec.decodeRequest(codec.encodeRequest({ kind: 'del', uid: 'u' }), 1), { message: 'del carried 1 unexpected descriptor(s)' });
  t.throws(() => codec.decodeRequest(codec.encodeRequest({ kind: 'snapshot_sent' }), 1), { message: 'snapshot_sent carried 1 unexpected descriptor(s)' });
  t.throws(() => codec.decodeRequest(Buffer.from([0x0a, 0x05, 0x01]), 0), { message: /^malformed WorkloadRequest \(3 bytes\)/ });
  t.throws(() => codec.decodeRequest(Buffer.alloc(0), 0), { message: /without a payload/ });
  // Field 9 (unknown to us, e.g. a newer agent's message type): no payload we know.
  t.throws(() => codec.decodeRequest(Buffer.from([0x4a, 0x00]), 0), { message: /without a payload .*newer agent/ });
  t.throws(() => codec.decodeRequest(codec.encodeRequest({ kind: 'del', uid: '' }), 0), { message: 'del without a uid' });
  const noInfo = protocEncode('WorkloadRequest', 'add { uid: "u9" }');
  if (noInfo) t.throws(() => codec.decodeRequest(noInfo, 1), { message: 'add for uid "u9" has no workload_info' });
});

test('bytes from protoc decode identically, and ours match protoc byte for byte', (t) => {
  const text = 'add { uid: "pod-uid-1" workload_info { name: "a1" namespace: "default" service_account: "sa-a1" } }';
  const fromProtoc = protocEncode('WorkloadRequest', text);
  if (!fromProtoc) {
    t.log('skipped: protoc not installed');
    t.pass();
    return;
  }
  t.deepEqual(codec.decodeRequest(fromProtoc, 1), { kind: 'add', uid: 'pod-uid-1', info: { name: 'a1', namespace: 'default', serviceAccount: 'sa-a1' } });
  t.deepEqual(codec.encodeRequest({ kind: 'add', uid: 'pod-uid-1', info: { name: 'a1', namespace: 'default', serviceAccount: 'sa-a1' } }), fromProtoc);
  t.deepEqual(codec.encodeRequest({ kind: 'snapshot_sent' }), protocEncode('WorkloadRequest', 'snapshot_sent {}'));
  t.deepEqual(codec.encodeRequest({ kind: 'keep', uid: 'k' }), protocEncode('WorkloadRequest', 'keep { uid: "k" }'));
  t.deepEqual(codec.encodeRequest({ kind: 'del', uid: 'd' }), protocEncode('WorkloadRequest', 'del { uid: "d" }'));
  t.deepEqual(codec.encodeAck('nope'), protocEncode('WorkloadResponse', 'ack { error: "nope" }'));
  t.deepEqual(codec.encodeHello(), protocEncode('ZdsHello', 'version: V1'));
});
