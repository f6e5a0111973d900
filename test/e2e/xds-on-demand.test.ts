/**
 * XDS_ON_DEMAND in-pod, end to end (root only): node1's proxy learns nothing up front (no
 * LOCAL_XDS_PATH, on-demand Address over delta xDS from the dev control plane in node1's
 * namespace); node2's reads the file as in the main e2e. A captured connection from pod a1
 * makes node1's proxy ask for the pod it came from by its uid (the ZDS pod id, as ztunnel
 * names the in-pod source) and for the destination by `network/ip`, then carry it over HBONE.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { rootSkipReason, removeStaleNamespaces } from '../helpers/netns';
import { E2eMesh, HTTP_PORT, podUid, type NodeName } from './mesh';
import { NODE_IP } from './topology';

const skip = rootSkipReason(['ip', 'iptables', 'curl']) ?? (fs.existsSync(path.resolve(__dirname, '../../../build/Release/ztunnel_capture.node')) ? null : 'the native capture addon is not built (node scripts/build-native.js)');

const B1 = '10.2.1.2';

/** node1's proxy on xDS, on demand; node2's as in the main e2e. */
class OnDemandMesh extends E2eMesh {
  override nodeEnv(node: NodeName, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    if (node !== 'node1') return super.nodeEnv(node, extra);
    return super.nodeEnv(node, {
      LOCAL_XDS_PATH: '',
      XDS_ADDRESS: `https://${NODE_IP.node1}:15012`,
      XDS_ROOT_CA: path.join(this.dir, 'ca', 'root-cert.pem'),
      XDS_ON_DEMAND: 'true',
      XDS_ON_DEMAND_TIMEOUT: '3s',
      POD_NAME: 'ztunnel-node1',
      POD_NAMESPACE: 'istio-system',
      INSTANCE_IP: NODE_IP.node1,
      ...extra,
    });
  }
}

if (skip === null) {
  const mesh = new OnDemandMesh();
  test.before(() => removeStaleNamespaces().then(() => mesh.start()));
  test.after.always(async (t) => void (await mesh.destroy()).forEach((p) => t.log(`cleanup problem: ${p}`)));

  async function xdsDump(): Promise<{ state: string; onDemandNames: string[] }> {
    const r = await mesh.topo.exec(mesh.ns('node1'), 'curl', ['-sS', '-m', '3', 'http://127.0.0.1:15000/config_dump']);
    return (JSON.parse(r.stdout) as { xds: { state: string; onDemandNames: string[] } }).xds;
  }

  test.serial('an in-pod connection makes the proxy fetch its pod by uid and the destination by address, then it is carried over HBONE', async (t) => {
    const before = await xdsDump();
    t.is(before.state, 'connected');
    t.false(before.onDemandNames.includes(podUid('a1')), JSON.stringify(before));
    const r = await mesh.curl('a1', `http://${B1}:${HTTP_PORT}/hello`);
    t.is(r.code, 0, r.stderr);
    t.regex(r.stdout, /b1/);
    const after = await xdsDump();
    t.true(after.onDemandNames.includes(podUid('a1')), JSON.stringify(after.onDemandNames));
    t.true(after.onDemandNames.includes(`/${B1}`), JSON.stringify(after.onDemandNames));
    const access = mesh.logs('node1').filter((l) => l['scope'] === 'access' && l['msg'] === 'connection complete' && l['dst.addr'] !== undefined);
    const line = access.at(-1);
    t.like(line, { 'src.workload': 'a1', 'dst.workload': 'b1' }, JSON.stringify(access.slice(-3)));
  });
} else {
  test.skip(`e2e xDS on-demand: skipped: ${skip}`, () => undefined);
}
