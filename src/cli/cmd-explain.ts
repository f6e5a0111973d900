import { readFile } from 'node:fs/promises';
import type { Command } from './command';
import { EXPLAIN_KEYS } from '../config/keys-tools';
import { ConfigError, describeKeys, loadConfig } from '../config/load';
import { formatLocalConfigError, parseLocalConfig } from '../state/local-config';
import { StateUpdater } from '../state/proxy-state';
import { explain } from '../policy/explain';
import { renderExplain } from '../policy/explain-render';

/**
 * `ztunnel-ts explain`: loads a local config and prints, for one source and destination,
 * the route every proxy would take and the authorization decision at the destination.
 * Exit codes: 0 explained (whatever the verdict), 1 bad config file, 2 bad flags.
 */
export const command: Command = {
  name: 'explain',
  summary: 'explain the route and the policy decision for source, destination and port',
  help: () =>
    'usage: ztunnel-ts explain --local-xds-path <file> --explain-source <ip> --explain-destination <ip:port> [--explain-identity <spiffe-id|none>] [--log-format json]\n\n' +
    'Shows the source workload, every hop (direct HBONE, TCP, waypoint, passthrough) with next hop,\n' +
    'CONNECT authority and expected SANs, and the authorization decision at the destination with\n' +
    'every policy evaluated.\n\nflags and environment variables:\n' +
    describeKeys(EXPLAIN_KEYS) +
    '\n',
  run: async (io) => {
    const { config } = loadConfig(EXPLAIN_KEYS, io.env, io.argv, (c) => {
      const issues = [];
      if (!c.source) issues.push({ key: '--explain-source', value: '', expected: 'the source IP' });
      if (!c.destination) issues.push({ key: '--explain-destination', value: '', expected: 'the destination ip:port' });
      if (!c.localXdsPath && !c.localXds) issues.push({ key: '--local-xds-path', value: '', expected: 'a local config file (or LOCAL_XDS inline)' });
      if (c.localXdsPath && c.localXds) issues.push({ key: 'LOCAL_XDS', value: '<inline>', expected: 'only one of LOCAL_XDS_PATH and LOCAL_XDS' });
      return issues;
    });
    const source = config.localXdsPath ?? 'LOCAL_XDS';
    let text: string;
    try {
      text = config.localXdsPath ? await readFile(config.localXdsPath, 'utf8') : (config.localXds ?? '');
    } catch (err) {
      io.stderr.write(`ztunnel-ts explain: cannot read ${source}: ${(err as Error).message}\n`);
      return 1;
    }
    const parsed = parseLocalConfig(text, source);
    if (!parsed.ok) {
      io.stderr.write(`ztunnel-ts explain: ${source} is invalid:\n${parsed.errors.map((e) => `  ${formatLocalConfigError(source, e)}`).join('\n')}\n`);
      return 1;
    }
    const updater = new StateUpdater();
    updater.source(source).replaceAll(parsed.value);
    const r = explain(updater.view, {
      srcIp: config.source,
      dst: config.destination,
      network: config.network,
      ...(config.identity !== null ? { identity: config.identity } : {}),
    });
    if ('invalid' in r) throw new ConfigError([{ key: '--explain-source/--explain-destination', value: `${config.source} -> ${config.destination}`, expected: r.invalid }]);
    io.stdout.write(config.logFormat === 'json' ? JSON.stringify(r, null, 2) + '\n' : renderExplain(r));
    return 0;
  },
};
