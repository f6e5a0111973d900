import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command, CliIo } from './command';
import { describeKeys, loadConfig } from '../config/load';
import { MESH_KEYS } from '../config/keys-tools';
import { parseMeshConfig, type MeshConfig } from '../mesh/mesh-config';
import { MeshRunner } from '../mesh/mesh-runner';
import { runSelfCheck } from '../mesh/self-check';
import { runLiveEditCheck } from '../mesh/live-edit';
import { summaryLine } from '../mesh/summary';
import { runDnsChecks } from '../mesh/mesh-dns';

const SUMMARY_EVERY_MS = 5000;

export const command: Command = {
  name: 'mesh',
  summary: 'run a whole local mesh on loopback from one config file',
  help: () =>
    'usage: ztunnel-ts mesh <mesh.yaml> [--mesh-self-check-only]\n\n' +
    'Starts the dev control plane (CA + delta xDS of the file\'s workloads, services and policies)\n' +
    'and one node proxy per node of the file as child processes, on loopback (127.0.0.0/8; no root\n' +
    'needed), plus the sample apps; prints what runs where and commands to try, runs a self-check\n' +
    '(allowed, denied and passthrough requests, then a policy edit pushed over xDS), then prints a one-line\n' +
    'summary from every node\'s /metrics until Ctrl-C. See examples/mesh.yaml.\n\n' +
    describeKeys(MESH_KEYS) +
    '\n',
  async run(io) {
    const { config, positionals } = loadConfig(MESH_KEYS, io.env, io.argv);
    const file = positionals[0];
    if (!file) {
      io.stderr.write('ztunnel-ts mesh: missing the mesh file (e.g. examples/mesh.yaml)\n');
      return 2;
    }
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      io.stderr.write(`ztunnel-ts mesh: cannot read ${file}: ${(err as Error).message}\n`);
      return 2;
    }
    const mesh = parseMeshConfig(text, file);
    const out = (line: string): void => void io.stdout.write(`${line}\n`);
    const runner = new MeshRunner({ config: mesh, mainJs: join(__dirname, 'main.js'), stateDir: config.stateDir ?? '', logLevel: config.logLevel, logFormat: config.logFormat, path: io.env['PATH'] ?? '/usr/bin:/bin', out });
    let interrupted = false;
    const offSignal = io.onSignal(() => {
      interrupted = true;
    });
    try {
      await runner.start();
    } catch (err) {
      io.stderr.write(`ztunnel-ts mesh: ${(err as Error).message}\n`);
      await runner.stop();
      offSignal();
      return 1;
    }
    printLayout(out, mesh, runner);
    const checked = await runSelfCheck(mesh.checks, mesh.nodes);
    const dnsResults = mesh.dns ? await runDnsChecks(mesh.dns, mesh.nodes) : [];
    const live = await runLiveEditCheck(mesh, (edit) => runner.editLocalConfig(edit));
    if (live) checked.push(live);
    const results = [...checked.map((r) => ({ name: r.check.name, pass: r.pass, detail: r.detail })), ...dnsResults];
    out('\nself-check:');
    for (const r of results) out(`  ${r.pass ? 'PASS' : 'FAIL'}  ${r.name}: ${r.detail}`);
    const failed = results.filter((r) => !r.pass).length;
    out(failed === 0 ? `all ${results.length} checks passed` : `${failed} of ${results.length} checks FAILED (logs in ${runner.stateDir}/logs)`);
    if (config.selfCheckOnly || interrupted) {
      await runner.stop();
      offSignal();
      return failed === 0 ? 0 : 1;
    }
    offSignal();
    await runUntilSignal(io, mesh, runner, out);
    return 0;
  },
};

function printLayout(out: (l: string) => void, mesh: MeshConfig, runner: MeshRunner): void {
  out(`\nstate dir: ${runner.stateDir}  (served over xDS, edit it live: ${runner.localConfigPath})`);
  for (const p of runner.pids()) out(`  ${p.name.padEnd(8)} pid ${p.pid}  log ${p.log}`);
  for (const n of mesh.nodes) {
    out(`\nnode ${n.name}: SOCKS5 ${n.ip}:${n.ports.socks5}  admin http://${n.ip}:${n.ports.admin}/  metrics http://${n.ip}:${n.ports.stats}/metrics  ready http://${n.ip}:${n.ports.readiness}/healthz/ready`);
    for (const w of mesh.workloads.filter((x) => x.node === n.name)) {
      out(`  workload ${w.namespace}/${w.name} (sa ${w.serviceAccount}) at ${w.ips.join(', ')}: outbound :15001, inbound HBONE :15008, plaintext :15006`);
    }
  }
  const nonMesh = mesh.apps.filter((a) => !mesh.workloads.some((w) => w.ips.includes(a.listen.ip)));
  out(`\napps: ${mesh.apps.map((a) => `${a.name}@${a.listen.ip}:${a.listen.port}`).join(', ')}${nonMesh.length ? `  (not in the mesh: ${nonMesh.map((a) => a.name).join(', ')})` : ''}`);
  const first = mesh.nodes[0];
  const client = mesh.checks[0];
  if (first && client) {
    out('\ntry:');
    out(`  curl --interface ${client.from} --socks5 ${first.ip}:${first.ports.socks5} http://${client.to.host}:${client.to.port}/`);
    const svcCheck = mesh.checks.find((c) => !/^\d+\.\d+\.\d+\.\d+$/.test(c.to.host));
    if (svcCheck) out(`  curl --interface ${svcCheck.from} --socks5-hostname ${first.ip}:${first.ports.socks5} http://${svcCheck.to.host}:${svcCheck.to.port}/`);
    const deny = mesh.checks.find((c) => c.expect === 'deny');
    if (deny) out(`  curl --interface ${deny.from} --socks5 ${first.ip}:${first.ports.socks5} http://${deny.to.host}:${deny.to.port}/   # denied by policy`);
    out(`  curl http://${first.ip}:${first.ports.admin}/debug/connections`);
    printDnsTries(out, mesh);
    printWaypointTries(out, mesh);
  }
}

/** dig against a workload's DNS proxy (a mesh name, a forwarded one) and a curl that uses the name it resolves. */
function printDnsTries(out: (l: string) => void, mesh: MeshConfig): void {
  const dns = mesh.dns;
  const first = mesh.nodes[0];
  if (!dns || !first) return;
  const from = dns.checks[0]?.from;
  const svc = mesh.checks.find((c) => /\.svc\./.test(c.to.host) && c.split === null && c.status === null);
  if (!from || !svc) return;
  out(`  dig @${from} -p ${dns.port} ${svc.to.host}   # the DNS proxy of the workload at ${from}: answered from the mesh state`);
  const external = Object.keys(dns.records)[0];
  if (external) out(`  dig @${from} -p ${dns.port} ${external}   # not a mesh name: forwarded to the local upstream resolver`);
  const h = svc.to.host;
  out(`  curl --interface ${svc.from} --socks5 ${first.ip}:${first.ports.socks5} --resolve ${h}:${svc.to.port}:$(dig +short @${from} -p ${dns.port} ${h}) http://${h}:${svc.to.port}/`);
}

/** curl commands for the checks that go through a waypoint (HTTP path/headers/status) and its admin endpoints. */
function printWaypointTries(out: (l: string) => void, mesh: MeshConfig): void {
  for (const c of mesh.checks.filter((x) => x.split !== null || x.status !== null || Object.keys(x.headers).length > 0)) {
    const node = mesh.nodes.find((n) => n.name === c.via);
    if (!node) continue;
    const h = Object.entries(c.headers).map(([k, v]) => `-H '${k}: ${v}' `).join('');
    out(`  curl --interface ${c.from} --socks5-hostname ${node.ip}:${node.ports.socks5} ${h}http://${c.to.host}:${c.to.port}${c.path}   # ${c.name}`);
  }
  for (const w of mesh.waypoints) {
    out(`
waypoint ${w.namespace}/${w.name} at ${w.ip}:15008: admin http://${w.ip}:${w.ports.admin}/config_dump  metrics http://${w.ip}:${w.ports.stats}/metrics`);
    out(`  curl 'http://${w.ip}:${w.ports.admin}/debug/explain?dst=<service VIP:port>&path=/admin'   # which route, backend and policy decide a request`);
  }
}

/** The live summary loop: one line every few seconds until SIGINT/SIGTERM, then stop every child. */
async function runUntilSignal(io: CliIo, mesh: MeshConfig, runner: MeshRunner, out: (l: string) => void): Promise<void> {
  out('\nrunning; Ctrl-C stops the mesh');
  let stop!: () => void;
  const stopped = new Promise<void>((r) => (stop = r));
  const off = io.onSignal(() => stop());
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    void summaryLine(mesh.nodes, new Date())
      .then((line) => {
        const dead = runner.deadChildren().map((c) => `${c.name} exited`);
        out(dead.length ? `${line} | ${dead.join(', ')}` : line);
      })
      .finally(() => (busy = false));
  }, SUMMARY_EVERY_MS);
  await stopped;
  clearInterval(timer);
  off();
  out('stopping the mesh…');
  await runner.stop();
  out('stopped');
}
