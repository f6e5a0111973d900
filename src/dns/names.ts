/**
 * Name handling of the DNS proxy, as ztunnel's resolver does it. Names are compared in lower
 * case, without the trailing dot. Pure functions: no state, no I/O.
 */

/** Lower case, no trailing dot (DNS names are case-insensitive; dns-packet gives them as sent). */
export function canonicalName(name: string): string {
  const n = name.toLowerCase();
  return n.endsWith('.') ? n.slice(0, -1) : n;
}

function labelCount(name: string): number {
  if (name === '') return 0;
  let n = 1;
  for (let i = name.indexOf('.'); i >= 0; i = name.indexOf('.', i + 1)) n++;
  return n;
}

/** True when `name` has more labels than `domain` and ends with it (a bare domain is not "in" itself). */
export function hasDomain(name: string, domain: string): boolean {
  return domain !== '' && !domain.startsWith('*') && name.length > domain.length + 1 && name.endsWith(`.${domain}`);
}

/** `name` without `.domain`, or null when it is not below that domain. */
export function trimDomain(name: string, domain: string): string | null {
  return hasDomain(name, domain) ? name.slice(0, name.length - domain.length - 1) : null;
}

/**
 * The Kubernetes FQDNs a short name may stand for, for a client in the namespace whose
 * service domain is `nsDomain` (`<ns>.svc.<domain>`):
 * `name` → name.<ns>.svc.<domain>; `name.ns` → name.ns.svc.<domain> (and, as ztunnel,
 * name.ns.<ns>.svc.<domain>); `name.ns.svc` → name.ns.svc.<domain>; longer names only when
 * they end in `svc` with four labels.
 */
export function kubeFqdns(name: string, domain: string, nsDomain: string): string[] {
  const svcDomain = `svc.${domain}`;
  const endsWithSvc = hasDomain(name, 'svc');
  switch (labelCount(name)) {
    case 1:
      return [`${name}.${nsDomain}`];
    case 2:
      return [`${name}.${svcDomain}`, `${name}.${nsDomain}`];
    case 3:
      return endsWithSvc ? [`${name}.${domain}`, `${name}.${svcDomain}`] : [`${name}.${svcDomain}`];
    case 4:
      return endsWithSvc ? [`${name}.${domain}`] : [];
    default:
      return [];
  }
}

/** One name to look up; `stripped` is the name after a search suffix was removed (answers get a CNAME to it). */
export interface Alias {
  readonly name: string;
  readonly stripped: string | null;
}

/**
 * The search domains a client's resolver appends (shared mode: built per client namespace,
 * never read from resolv.conf): `<ns>.svc.<domain>`, `svc.<domain>`, `<domain>`.
 */
export function searchDomains(clientNamespace: string, domain: string): string[] {
  return [`${clientNamespace}.svc.${domain}`, `svc.${domain}`, domain];
}

/**
 * Every name a query may mean, in the order they are tried: the name itself, its
 * Kubernetes expansions, then for each search domain it ends with the name without it
 * (and that name's expansions), marked as stripped. Duplicates are dropped, first wins.
 */
export function aliasesOf(name: string, clientNamespace: string, domain: string): Alias[] {
  const out: Alias[] = [];
  const seen = new Set<string>();
  const add = (a: Alias): void => {
    if (seen.has(a.name)) return;
    seen.add(a.name);
    out.push(a);
  };
  const nsDomain = `${clientNamespace}.svc.${domain}`;
  add({ name, stripped: null });
  for (const f of kubeFqdns(name, domain, nsDomain)) add({ name: f, stripped: null });
  for (const sd of searchDomains(clientNamespace, domain)) {
    const stripped = trimDomain(name, sd);
    if (stripped === null) continue;
    add({ name: stripped, stripped });
    for (const f of kubeFqdns(stripped, domain, nsDomain)) add({ name: f, stripped });
  }
  return out;
}

/**
 * The name itself, then each wildcard that covers it from the most specific:
 * a.b.c → a.b.c, *.b.c, *.c.
 */
export function wildcardsOf(name: string): string[] {
  const out = [name];
  let rest = name;
  for (let dot = rest.indexOf('.'); dot > 0; dot = rest.indexOf('.')) {
    out.push(`*${rest.slice(dot)}`);
    rest = rest.slice(dot + 1);
  }
  return out;
}
