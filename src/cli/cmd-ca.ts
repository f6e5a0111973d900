import type { Command } from './command';
import { CA_KEYS } from '../config/keys-ca';
import { describeKeys, loadConfig } from '../config/load';
import { createLogger } from '../logging/logger';
import { startDevControlPlane, type DevControlPlane } from '../controlplane/dev-control-plane';
import { formatListenAddr } from '../util/socket-addr';
import { runService } from './lifecycle';

export const command: Command = {
  name: 'ca',
  summary: 'dev CA',
  help: () =>
    'usage: ztunnel-ts ca [--flags]\n\n' +
    "The dev control plane: Istio's CreateCertificate gRPC API and delta xDS (DeltaAggregatedResources) on one\n" +
    'TLS port (what istiod serves on 15012). xDS serves LOCAL_XDS_PATH (ztunnel\'s local format), watched: an edit\n' +
    'is pushed as a delta, a bad edit is logged and the last good version stays.\n' +
    'On first start it creates an ECDSA P-256 root in CA_DIR (root-cert.pem, root-key.pem); clients trust it\n' +
    'with CA_ROOT_CA=<CA_DIR>/root-cert.pem. Callers authenticate with bearer tokens listed in CA_TOKENS.\n' +
    'See certs/README.md. Every setting is an environment variable or the matching flag.\n\n' +
    describeKeys(CA_KEYS) +
    '\n',
  async run(io) {
    const { config: c } = loadConfig(CA_KEYS, io.env, io.argv);
    const logger = createLogger({ level: c.logLevel, format: c.logFormat, base: { component: 'ca' } });
    let ca: DevControlPlane | null = null;
    const service = {
      async start(): Promise<void> {
        ca = await startDevControlPlane({
          dir: c.dir,
          listenAddr: c.listenAddr,
          tokensPath: c.tokens,
          trustedNodeAccounts: c.trustedNodeAccounts,
          localXdsPath: c.localXdsPath,
          trustDomain: c.trustDomain,
          maxTtlMs: c.maxTtl,
          serverSans: c.serverSans,
          logger,
        });
        if (!c.tokens) logger.warn({ key: 'CA_TOKENS' }, 'no CA_TOKENS file: every request will be refused as unauthenticated');
        io.stdout.write(`ztunnel-ts ca: listening on ${ca.address} (asked for ${formatListenAddr(c.listenAddr)}); clients: CA_ADDRESS=https://${ca.address} CA_ROOT_CA=${ca.rootCertPath} XDS_ADDRESS=https://${ca.address} XDS_ROOT_CA=${ca.rootCertPath}\n`);
      },
      async close(): Promise<void> {
        await ca?.close();
        logger.info('dev CA stopped');
        logger.flush?.();
      },
      destroy(): void {
        ca?.destroy();
      },
    };
    // The CA has no /quitquitquit: it runs until SIGTERM/SIGINT.
    return runService(io, logger, service, new Promise<void>(() => undefined));
  },
};
