import { readFile } from 'node:fs/promises';

/**
 * How the xDS client authenticates the control plane and itself, re-read on every
 * (re)connect so a rotated istiod root or a refreshed projected token is picked up
 * without a restart.
 */

/** XDS_ROOT_CA: SYSTEM → null (the OS roots), inline PEM as is, else a PEM file's text. */
export async function readRootPem(value: string, key = 'XDS_ROOT_CA'): Promise<string | null> {
  if (value === 'SYSTEM') return null;
  if (value.includes('-----BEGIN CERTIFICATE-----')) return value;
  let text: string;
  try {
    text = await readFile(value, 'utf8');
  } catch (err) {
    throw new Error(`${key} ${JSON.stringify(value)} is neither a readable PEM file nor inline PEM (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) throw new Error(`${key} file ${value} holds no PEM certificate`);
  return text;
}

/**
 * AUTH_TOKEN: the file's contents when it exists; a missing path-like value (./…, /…)
 * means no token (outside Kubernetes), anything else is a literal token.
 */
export async function readToken(value: string): Promise<string | null> {
  if (value === '') return null;
  try {
    return (await readFile(value, 'utf8')).trim();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENAMETOOLONG' || code === 'ENOTDIR') return /^(\.{0,2}\/)/.test(value) ? null : value;
    throw new Error(`cannot read the AUTH_TOKEN file ${value} (${code ?? 'error'})`);
  }
}

/** `https://host:port` or `host:port` → the gRPC target `host:port`. */
export function grpcTarget(address: string): string {
  return address.replace(/^https?:\/\//, '').replace(/\/+$/, '');
}
