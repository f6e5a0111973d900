import { join } from 'node:path';
import * as protobuf from 'protobufjs';

/** WorkloadInfo as the agent sends it (pod name, namespace, service account). */
export interface ZdsWorkloadInfo {
  readonly name: string;
  readonly namespace: string;
  readonly serviceAccount: string;
}

/** One decoded WorkloadRequest, checked against the descriptors that came with it. */
export type ZdsRequest =
  | { readonly kind: 'add'; readonly uid: string; readonly info: ZdsWorkloadInfo }
  | { readonly kind: 'keep'; readonly uid: string }
  | { readonly kind: 'del'; readonly uid: string }
  | { readonly kind: 'snapshot_sent' };

/** The ZDS protocol version we speak (ZdsHello.version). */
export const ZDS_V1 = 1;

/**
 * Encoder/decoder for istio.workload.zds (proto/istio/workload/zds/zds.proto), built once
 * per client or agent from the vendored .proto with protobufjs: field numbers come from the
 * file, not from hand-written encoding.
 */
export class ZdsCodec {
  private readonly hello: protobuf.Type;
  private readonly request: protobuf.Type;
  private readonly response: protobuf.Type;

  constructor(protoRoot = join(__dirname, '..', '..', '..', 'proto')) {
    const root = protobuf.loadSync(join(protoRoot, 'istio/workload/zds/zds.proto'));
    this.hello = root.lookupType('istio.workload.zds.ZdsHello');
    this.request = root.lookupType('istio.workload.zds.WorkloadRequest');
    this.response = root.lookupType('istio.workload.zds.WorkloadResponse');
  }

  encodeHello(version = ZDS_V1): Buffer {
    return Buffer.from(this.hello.encode(this.hello.create({ version })).finish());
  }

  /** The agent's side: the version the node proxy announced (0 when absent). */
  decodeHello(data: Buffer): number {
    const m = this.hello.decode(data) as unknown as { version?: number };
    return m.version ?? 0;
  }

  encodeAck(error = ''): Buffer {
    return Buffer.from(this.response.encode(this.response.create({ ack: { error } })).finish());
  }

  /** The agent's side: the ack's error ('' = success); throws when the response has no ack. */
  decodeAck(data: Buffer): string {
    const m = this.response.toObject(this.response.decode(data), { oneofs: true, defaults: true }) as { payload?: string; ack?: { error?: string } };
    if (m.payload !== 'ack') throw new Error('WorkloadResponse without an ack');
    return m.ack?.error ?? '';
  }

  encodeRequest(r: ZdsRequest): Buffer {
    let body: Record<string, unknown>;
    switch (r.kind) {
      case 'add':
        body = { add: { uid: r.uid, workloadInfo: { name: r.info.name, namespace: r.info.namespace, serviceAccount: r.info.serviceAccount } } };
        break;
      case 'keep':
        body = { keep: { uid: r.uid } };
        break;
      case 'del':
        body = { del: { uid: r.uid } };
        break;
      case 'snapshot_sent':
        body = { snapshotSent: {} };
        break;
    }
    return Buffer.from(this.request.encode(this.request.create(body)).finish());
  }

  /**
   * Decodes one WorkloadRequest and checks the descriptor rule: an `add` carries exactly one
   * (the pod's network namespace), every other message none. Throws an Error that says what
   * was wrong; the caller closes the descriptors either way.
   */
  decodeRequest(data: Buffer, fdCount: number): ZdsRequest {
    let msg: protobuf.Message;
    try {
      msg = this.request.decode(data);
    } catch (err) {
      throw new Error(`malformed WorkloadRequest (${data.length} bytes): ${err instanceof Error ? err.message : String(err)}`);
    }
    const o = this.request.toObject(msg, { oneofs: true, defaults: true }) as {
      payload?: string;
      add?: { uid: string; workloadInfo?: { name: string; namespace: string; serviceAccount: string } };
      keep?: { uid: string };
      del?: { uid: string };
    };
    const kind = o.payload;
    if (kind === undefined) throw new Error(`WorkloadRequest without a payload (${data.length} bytes; unknown message type from a newer agent?)`);
    if (kind === 'add') {
      if (fdCount !== 1) throw new Error(`add for uid ${JSON.stringify(o.add?.uid ?? '')} carried ${fdCount} descriptors; exactly one (the pod's network namespace) is required`);
    } else if (fdCount !== 0) {
      throw new Error(`${kind === 'snapshotSent' ? 'snapshot_sent' : kind} carried ${fdCount} unexpected descriptor(s)`);
    }
    switch (kind) {
      case 'add': {
        const uid = requireUid(o.add?.uid, 'add');
        const wi = o.add?.workloadInfo;
        if (!wi) throw new Error(`add for uid ${JSON.stringify(uid)} has no workload_info`);
        return { kind: 'add', uid, info: { name: wi.name, namespace: wi.namespace, serviceAccount: wi.serviceAccount } };
      }
      case 'keep':
        return { kind: 'keep', uid: requireUid(o.keep?.uid, 'keep') };
      case 'del':
        return { kind: 'del', uid: requireUid(o.del?.uid, 'del') };
      case 'snapshotSent':
        return { kind: 'snapshot_sent' };
      default:
        throw new Error(`unknown WorkloadRequest payload ${JSON.stringify(kind)}`);
    }
  }
}

function requireUid(uid: string | undefined, what: string): string {
  if (!uid) throw new Error(`${what} without a uid`);
  return uid;
}
