/** PEM helpers shared by the CA client, the certificate builder and the dev CA. */

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END \1-----/g;

/** Every CERTIFICATE block in `text`, normalised (one PEM string per certificate). */
export function splitPemCertificates(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(BLOCK)) {
    if (m[1] !== 'CERTIFICATE') continue;
    out.push(derToPem(Buffer.from((m[2] as string).replace(/\s+/g, ''), 'base64'), 'CERTIFICATE'));
  }
  return out;
}

/** The DER inside the first block of the given label, or null. */
export function pemToDer(text: string, label: string): Buffer | null {
  for (const m of text.matchAll(BLOCK)) {
    if (m[1] === label) return Buffer.from((m[2] as string).replace(/\s+/g, ''), 'base64');
  }
  return null;
}

export function derToPem(derBytes: Buffer, label: string): string {
  const b64 = derBytes.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}
