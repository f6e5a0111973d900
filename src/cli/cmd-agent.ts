import * as fs from 'node:fs';
import { dirname } from 'node:path';
import type { Command } from './command';
import { describeKeys, loadConfig } from '../config/load';
import { AGENT_KEYS } from '../config/keys-tools';
import { createLogger } from '../logging/logger';
import { systemExec } from '../redirect/exec';
import { NodeAgent } from '../inpod/agent';
import { loadNetnsAddon } from '../inpod/netns-addon';
import { ZdsCodec } from '../inpod/zds-codec';
import { buildRedirectSpec } from './cmd-redirect';
import { runService } from './lifecycle';

export const command: Command = {
  name: 'agent',
  summary: 'stand-in for the istio-cni node agent',
  help: () =>
    'usage: ztunnel-ts agent [--agent-pods pods.yaml] [--flags]\n\n' +
    "Plays istio-cni's node-agent role for local runs, tests and hosts without Kubernetes: serves ZDS on\n" +
    'INPOD_UDS (the node proxy, started with INPOD_ENABLED=true, connects to it), enrols the pods listed in\n' +
    'AGENT_PODS (each given as a network namespace: an ip-netns name or /proc/<pid>/ns/net), installs the\n' +
    "in-pod capture rules in each (as 'ztunnel-ts redirect install') and removes them on un-enrol. The file\n" +
    'is watched: add or remove a pod and the change is applied. A node proxy that (re)connects gets a\n' +
    'snapshot of every enrolled pod. Needs root (setns, iptables).\n\n' +
    describeKeys(AGENT_KEYS) +
    '\n',
  async run(io) {
    const { config: c } = loadConfig(AGENT_KEYS, io.env, io.argv);
    const { spec, issues } = buildRedirectSpec(c);
    if (issues.length > 0) throw new Error(`invalid configuration: ${issues.map((i) => `${i.key}=${JSON.stringify(i.value)}: expected ${i.expected}`).join('; ')}`);
    const support = loadNetnsAddon();
    if (!support.available) throw new Error(`the node agent needs the native addon: ${support.reason}`);
    const logger = createLogger({ level: c.logLevel, format: c.logFormat, base: { component: 'agent' } });
    fs.mkdirSync(dirname(c.inpodUds), { recursive: true });
    const agent = new NodeAgent({
      addon: support.addon,
      codec: new ZdsCodec(),
      socketPath: c.inpodUds,
      podsFile: c.pods,
      redirect: c.redirect ? { exec: systemExec(), spec, backend: c.backend } : null,
      logger,
    });
    if (c.pods === null) logger.warn({ key: 'AGENT_PODS' }, 'no pods file: serving ZDS with no pods');
    return runService(io, logger, agent, new Promise<void>(() => undefined));
  },
};
