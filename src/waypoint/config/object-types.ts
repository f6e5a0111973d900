/** Where an object came from, for messages, ties and the dump. */
export interface ObjectMeta {
  readonly name: string;
  readonly namespace: string;
  /** metadata.creationTimestamp in ms since the epoch, or null (sorts after any timestamp). */
  readonly createdMs: number | null;
  /** file:line of the document, for explain and the dump. */
  readonly source: string;
}

/** `parentRefs` / `targetRefs` entry, normalised: kind Service (core group) or Gateway (the waypoint). */
export interface ObjectRef {
  readonly kind: 'Service' | 'Gateway';
  readonly name: string;
  readonly namespace: string;
  /** Service parentRefs may name one port; null = every port. */
  readonly port: number | null;
}
