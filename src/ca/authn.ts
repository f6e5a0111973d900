import { readFile } from 'node:fs/promises';
import { status } from '@grpc/grpc-js';
import { parse as parseYaml } from 'yaml';
import { SpiffeId } from '../identity/spiffe';
import { formatLocalConfigError, parseLocalConfig } from '../state/local-config';

/** One CA_TOKENS entry: who a bearer token stands for (the dev stand-in for a k8s JWT). */
export interface Caller {
  readonly token: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  /** The node the caller runs on; required to impersonate. */
  readonly node: string;
}

/** A refusal the CA returns as a gRPC status with this message. */
export class CaDenied extends Error {
  constructor(
    readonly code: status,
    message: string,
  ) {
    super(message);
    this.name = 'CaDenied';
  }
}

/** Validates a parsed CA_TOKENS document; errors name the entry and field. */
export function parseTokens(doc: unknown, source: string): Caller[] {
  if (!Array.isArray(doc)) throw new Error(`${source}: expected a list of {token, namespace, serviceAccount, node}`);
  const seen = new Set<string>();
  return doc.map((e: unknown, i) => {
    const o = (e ?? {}) as Record<string, unknown>;
    const str = (k: string, required: boolean): string => {
      const v = o[k];
      if (v === undefined && !required) return '';
      if (typeof v !== 'string' || (required && v === '')) throw new Error(`${source}: entry ${i}: "${k}" must be a non-empty string`);
      return v;
    };
    const c: Caller = { token: str('token', true), namespace: str('namespace', true), serviceAccount: str('serviceAccount', true), node: str('node', false) };
    if (seen.has(c.token)) throw new Error(`${source}: entry ${i}: duplicate token (for ${c.namespace}/${c.serviceAccount})`);
    seen.add(c.token);
    return c;
  });
}

/** Reads CA_TOKENS (YAML or JSON). */
export async function loadTokens(path: string): Promise<Caller[]> {
  const text = await readFile(path, 'utf8');
  return parseTokens(parseYaml(text) as unknown, path);
}

/** `Bearer <token>` from the authorization metadata, or null. */
export function bearerToken(values: readonly unknown[]): string | null {
  const v = values[0];
  if (typeof v !== 'string') return null;
  const m = /^Bearer\s+(\S+)$/i.exec(v.trim());
  return m ? (m[1] as string) : null;
}

export interface AuthorizeInput {
  readonly caller: Caller;
  /** metadata ImpersonatedIdentity, or null. */
  readonly impersonated: string | null;
  readonly trustDomain: string;
  /** CA_TRUSTED_NODE_ACCOUNTS as namespace/serviceAccount. */
  readonly trustedNodeAccounts: readonly string[];
  /** LOCAL_XDS_PATH: where workloads run. */
  readonly localXdsPath: string | null;
}

/**
 * The identity a caller may get (Istio's CA rules): its own
 * spiffe://TD/ns/NS/sa/SA, or, when impersonating, a workload identity if the caller is
 * a trusted node account and a workload with that namespace/service account runs on the
 * caller's node (a node never gets keys for pods on other nodes).
 */
export async function authorizeIdentity(i: AuthorizeInput): Promise<SpiffeId> {
  const who = `${i.caller.namespace}/${i.caller.serviceAccount}`;
  if (i.impersonated === null) return SpiffeId.of(i.trustDomain, i.caller.namespace, i.caller.serviceAccount);
  const target = SpiffeId.tryParse(i.impersonated);
  if (!target) throw new CaDenied(status.INVALID_ARGUMENT, `ImpersonatedIdentity ${JSON.stringify(i.impersonated)} is not a SPIFFE id spiffe://<td>/ns/<ns>/sa/<sa>`);
  if (!i.trustedNodeAccounts.includes(who)) throw new CaDenied(status.PERMISSION_DENIED, `caller ${who} may not impersonate ${target}: not in CA_TRUSTED_NODE_ACCOUNTS`);
  if (i.caller.node === '') throw new CaDenied(status.PERMISSION_DENIED, `caller ${who} may not impersonate ${target}: its token names no node`);
  if (!i.localXdsPath) throw new CaDenied(status.PERMISSION_DENIED, `caller ${who} may not impersonate ${target}: the CA has no LOCAL_XDS_PATH to check where workloads run`);
  const workloads = await readWorkloads(i.localXdsPath);
  const onNode = workloads.some((w) => w.node === i.caller.node && w.namespace === target.namespace && w.serviceAccount === target.serviceAccount && (w.trustDomain || i.trustDomain) === target.trustDomain);
  if (!onNode) throw new CaDenied(status.PERMISSION_DENIED, `caller ${who} on node ${JSON.stringify(i.caller.node)} may not impersonate ${target}: no workload with that identity runs on that node`);
  return target;
}

/** Re-read per impersonation request so the CA follows workload moves without a restart. */
async function readWorkloads(path: string): Promise<ReadonlyArray<{ namespace: string; serviceAccount: string; node: string; trustDomain: string }>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new CaDenied(status.UNAVAILABLE, `cannot read LOCAL_XDS_PATH ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  const r = parseLocalConfig(text, path);
  if (!r.ok) throw new CaDenied(status.UNAVAILABLE, `LOCAL_XDS_PATH ${path} is invalid: ${r.errors.slice(0, 3).map((e) => formatLocalConfigError(path, e)).join('; ')}`);
  return r.value.workloads;
}
