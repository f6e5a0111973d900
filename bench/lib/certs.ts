import { execFileSync } from 'node:child_process';
import { writeFileSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** Files of one leaf certificate minted by `mintDevPki`. */
export interface Leaf {
  readonly cert: string;
  readonly key: string;
  /** cert + key concatenated (haproxy `crt`). */
  readonly combined: string;
  readonly spiffe: string;
}

export interface DevPki {
  readonly rootCert: string;
  readonly leaves: Record<string, Leaf>;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/**
 * A dev root and ECDSA P-256 leaves with SPIFFE URI SANs (serverAuth + clientAuth), minted
 * with the openssl CLI into `dir`, the same shape as mesh certificates, so the peers
 * (haproxy, stunnel) do the same TLS work per handshake as the mesh path.
 */
export function mintDevPki(dir: string, names: readonly string[], trustDomain = 'cluster.local'): DevPki {
  const root = path.join(dir, 'root');
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${root}.key`], dir);
  openssl(
    ['req', '-x509', '-new', '-key', `${root}.key`, '-subj', '/O=ztunnel-ts-bench/CN=bench root', '-days', '2', '-out', `${root}.pem`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
    dir,
  );
  const leaves: Record<string, Leaf> = {};
  for (const name of names) {
    const base = path.join(dir, name);
    const spiffe = `spiffe://${trustDomain}/ns/bench/sa/${name}`;
    writeFileSync(
      `${base}.ext`,
      `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyAgreement\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=critical,URI:${spiffe}\n`,
    );
    openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${base}.ec.key`], dir);
    // PKCS#8 for every consumer (haproxy, stunnel, node).
    openssl(['pkcs8', '-topk8', '-nocrypt', '-in', `${base}.ec.key`, '-out', `${base}.key`], dir);
    openssl(['req', '-new', '-key', `${base}.key`, '-subj', '/O=ztunnel-ts-bench', '-out', `${base}.csr`], dir);
    openssl(['x509', '-req', '-in', `${base}.csr`, '-CA', `${root}.pem`, '-CAkey', `${root}.key`, '-CAcreateserial', '-days', '2', '-sha256', '-extfile', `${base}.ext`, '-out', `${base}.crt`], dir);
    writeFileSync(`${base}.pem`, readFileSync(`${base}.crt`, 'utf8') + readFileSync(`${base}.key`, 'utf8'), { mode: 0o600 });
    leaves[name] = { cert: `${base}.crt`, key: `${base}.key`, combined: `${base}.pem`, spiffe };
  }
  return { rootCert: `${root}.pem`, leaves };
}
