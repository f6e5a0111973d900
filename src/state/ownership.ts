/**
 * Which sources hold each resource, and each one's copy. The copy in force is the one most
 * recently written by any source that still holds the resource; when that source removes it,
 * the next most recent holder's copy comes back, and the resource disappears only when no
 * source holds it any more. So a second source that defines the same workload overrides the
 * first while it holds it, and dropping it from either source never wipes the other's view.
 */
export class Holdings<T> {
  /** key → (source → copy), in write order: the last entry is the copy in force. */
  private readonly byKey = new Map<string, Map<string, T>>();
  private readonly bySource = new Map<string, Set<string>>();

  /**
   * Records `source`'s copy, which is now in force. Returns the other sources holding the
   * key when `source` has just started to hold it too (a new conflict to report), else [].
   */
  put(key: string, source: string, value: T): string[] {
    let holders = this.byKey.get(key);
    if (!holders) this.byKey.set(key, (holders = new Map()));
    const joined = !holders.delete(source);
    const others = joined ? [...holders.keys()] : [];
    holders.set(source, value);
    let keys = this.bySource.get(source);
    if (!keys) this.bySource.set(source, (keys = new Set()));
    keys.add(key);
    return others;
  }

  /**
   * Forgets `source`'s copy. Returns `undefined` when the key is now held by nobody (remove
   * it), the copy now in force when another source still holds it, or `null` when `source`
   * did not hold it (nothing to do).
   */
  drop(key: string, source: string): T | undefined | null {
    const holders = this.byKey.get(key);
    if (!holders?.delete(source)) return null;
    this.bySource.get(source)?.delete(key);
    if (holders.size === 0) {
      this.byKey.delete(key);
      return undefined;
    }
    let last: T | undefined;
    for (const v of holders.values()) last = v;
    return last;
  }

  /** Keys `source` holds now (a copy: callers drop while iterating). */
  keysOf(source: string): string[] {
    return [...(this.bySource.get(source) ?? [])];
  }

  /** Sources holding `key`, oldest write first. */
  holdersOf(key: string): string[] {
    return [...(this.byKey.get(key)?.keys() ?? [])];
  }
}
