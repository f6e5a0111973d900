import { isMap, isScalar, isSeq, type LineCounter, type Node, type Pair } from 'yaml';

/** One problem in a local config file: where (path and line/column) and what was expected. */
export interface LocalConfigError {
  /** JS-like path into the document, e.g. `workloads[1].protocol`. */
  readonly path: string;
  /** 1-based. */
  readonly line: number;
  /** 1-based. */
  readonly column: number;
  readonly message: string;
}

/** `file:line:col: path: message`, the form used in logs and CLI output. */
export function formatLocalConfigError(source: string, e: LocalConfigError): string {
  return `${source}:${e.line}:${e.column}: ${e.path === '' ? '' : `${e.path}: `}${e.message}`;
}

export type YNode = Node | null | undefined;

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function childPath(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  if (IDENT.test(key)) return path === '' ? key : `${path}.${key}`;
  return `${path}[${JSON.stringify(key)}]`;
}

/** A map node with its keys checked against a schema; lookups by key return the value node. */
export interface ObjectReader {
  readonly path: string;
  readonly node: Node;
  get(key: string): YNode;
  /** Path of a field in this object. */
  at(key: string): string;
}

/** Scalar text as written (for messages); collections are summarised. */
export function show(node: YNode): string {
  if (node === null || node === undefined) return 'null';
  if (isScalar(node)) return JSON.stringify(node.value);
  if (isMap(node)) return 'a map';
  if (isSeq(node)) return 'a list';
  return 'a value';
}

/**
 * Walks a parsed YAML document node by node, recording every problem with its path and
 * position instead of stopping at the first one, so one reload reports everything wrong.
 */
export class YamlReader {
  readonly errors: LocalConfigError[] = [];
  constructor(private readonly lc: LineCounter) {}

  pos(node: YNode, fallback?: YNode): { line: number; column: number } {
    const n = node ?? fallback;
    const offset = n?.range?.[0] ?? 0;
    const p = this.lc.linePos(offset);
    return { line: p.line, column: p.col };
  }

  error(node: YNode, path: string, message: string, fallback?: YNode): void {
    this.errors.push({ path, ...this.pos(node, fallback), message });
  }

  isNull(node: YNode): boolean {
    return node === null || node === undefined || (isScalar(node) && node.value === null);
  }

  /**
   * Reads a map, rejecting keys outside `allowed`. `special` maps a key to a message used
   * instead of the generic unknown-field one (L7 fields in policies).
   */
  object(node: YNode, path: string, allowed: readonly string[], special?: (key: string) => string | null): ObjectReader | null {
    if (!isMap(node)) {
      this.error(node, path, `expected a map with fields ${allowed.join(', ')}, got ${show(node)}`);
      return null;
    }
    const values = new Map<string, Node | null>();
    for (const pair of node.items as Pair<unknown, unknown>[]) {
      const k = pair.key as YNode;
      const keyText = isScalar(k) ? String(k.value) : null;
      if (keyText === null) {
        this.error(k, path, 'map keys must be plain strings', node);
        continue;
      }
      if (!allowed.includes(keyText)) {
        const msg = special?.(keyText) ?? `unknown field ${JSON.stringify(keyText)}; expected one of: ${allowed.join(', ')}`;
        this.error(k, childPath(path, keyText), msg, node);
        continue;
      }
      if (values.has(keyText)) {
        this.error(k, childPath(path, keyText), `duplicate field ${JSON.stringify(keyText)}`, node);
        continue;
      }
      values.set(keyText, (pair.value as Node | null) ?? null);
    }
    return { path, node, get: (k) => values.get(k), at: (k) => childPath(path, k) };
  }

  /** The pairs of a free-form map (e.g. `ports`, `services`); keys as text. */
  entries(node: YNode, path: string, what: string): { key: string; keyNode: Node; value: YNode }[] {
    if (this.isNull(node)) return [];
    if (!isMap(node)) {
      this.error(node, path, `expected ${what}, got ${show(node)}`);
      return [];
    }
    const out: { key: string; keyNode: Node; value: YNode }[] = [];
    for (const pair of node.items as Pair<unknown, unknown>[]) {
      const k = pair.key as YNode;
      if (!isScalar(k) || k.value === null) {
        this.error(k, path, 'map keys must be plain scalars', node);
        continue;
      }
      out.push({ key: String(k.value), keyNode: k, value: pair.value as YNode });
    }
    return out;
  }

  /** A list; null/absent → []. Each item is handed to `item` with its path. */
  list<T>(node: YNode, path: string, what: string, item: (n: YNode, p: string, i: number) => T | undefined): T[] {
    if (this.isNull(node)) return [];
    if (!isSeq(node)) {
      this.error(node, path, `expected a list of ${what}, got ${show(node)}`);
      return [];
    }
    const out: T[] = [];
    node.items.forEach((n, i) => {
      const v = item(n as YNode, childPath(path, i), i);
      if (v !== undefined) out.push(v);
    });
    return out;
  }

  /** A required or optional string (absent → `def`, or undefined); numbers are not silently stringified. */
  string(node: YNode, path: string, opts: { required?: boolean; def?: string; owner?: YNode } = {}): string | undefined {
    if (this.isNull(node)) {
      if (opts.required) {
        this.error(node, path, 'required field is missing (expected a string)', opts.owner);
        return undefined;
      }
      return opts.def;
    }
    if (!isScalar(node) || typeof node.value !== 'string') {
      this.error(node, path, `expected a string, got ${show(node)}`);
      return undefined;
    }
    if (opts.required && node.value === '') {
      this.error(node, path, 'must not be empty');
      return undefined;
    }
    return node.value;
  }

  bool(node: YNode, path: string, def: boolean): boolean | undefined {
    if (this.isNull(node)) return def;
    if (!isScalar(node) || typeof node.value !== 'boolean') {
      this.error(node, path, `expected true or false, got ${show(node)}`);
      return undefined;
    }
    return node.value;
  }

  int(node: YNode, path: string, min: number, max: number, what: string, def?: number): number | undefined {
    if (this.isNull(node)) {
      if (def === undefined) this.error(node, path, `required field is missing (expected ${what})`);
      return def;
    }
    const v = isScalar(node) ? node.value : undefined;
    const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : NaN;
    if (!Number.isInteger(n) || n < min || n > max) {
      this.error(node, path, `${show(node)} is not ${what} (expected an integer from ${min} to ${max})`);
      return undefined;
    }
    return n;
  }

  /** One of a closed set of spellings (exact, as ztunnel's serde enums). */
  oneOf<T extends string>(node: YNode, path: string, values: readonly T[], def?: T): T | undefined {
    if (this.isNull(node)) {
      if (def === undefined) this.error(node, path, `required field is missing (expected one of ${values.join(', ')})`);
      return def;
    }
    const v = isScalar(node) ? node.value : undefined;
    if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) {
      this.error(node, path, `${show(node)} is not valid; expected one of ${values.join(', ')}`);
      return undefined;
    }
    return v as T;
  }

  /** Parses a port given as a map key (YAML gives a number or a string). */
  portKey(key: string, keyNode: Node, path: string): number | undefined {
    if (!/^\d+$/.test(key) || Number(key) < 1 || Number(key) > 65535) {
      this.error(keyNode, path, `${JSON.stringify(key)} is not a port (expected an integer from 1 to 65535)`);
      return undefined;
    }
    return Number(key);
  }
}
