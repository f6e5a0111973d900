import { Socket, type OnReadOpts, type SocketConstructorOpts } from 'node:net';
import type { Writable } from 'node:stream';
import { duplicateSocketFd } from './socket-opts';

/**
 * Read size of a bulk read: libuv's suggestion for every read, so one read still takes
 * whatever the kernel holds up to this.
 */
const BULK_SIZE = 64 * 1024;
/**
 * An idle or interactive socket reads into this much of its own memory: what a connection
 * keeps while idle, instead of a bulk buffer. Reads that fill it switch to bulk buffers.
 */
const SMALL_SIZE = 2 * 1024;
/** Bulk buffers one socket may have in writes that still reference them; reading pauses at this many. */
const RING = 4;
/**
 * The small buffer every reader of this thread arms while idle or interactive. Sharing it is
 * safe because what is read into it is copied out inside the read callback, and libuv runs a
 * read and its callback back to back: no other socket reads into it in between. So an idle
 * connection costs no read buffer at all. (A module instance, and so this buffer, is per thread.)
 */
const SCRATCH = Buffer.allocUnsafeSlow(SMALL_SIZE);

/**
 * Read-buffer reuse for a plain TCP socket the project constructs itself (dials, sockets
 * adopted from descriptors): Node's `onread` option, so libuv reads into buffers this
 * reader owns instead of a fresh 64 KiB allocation per read (an allocation, a shrinking
 * reallocation and an external ArrayBuffer for the collector on every read).
 *
 * Two modes. Until a splice attaches a destination, every read is copied into a fresh
 * Buffer and pushed into the socket's readable side, so handshake readers ('data',
 * pause/resume, unshift) see an ordinary socket. Once attached, reads go straight to the
 * destination: a read of at most SMALL_SIZE bytes lands in the thread's one shared small
 * buffer and is copied (so an idle connection holds no read buffer of its own); a bulk read
 * is written by reference and its buffer stays in the ring until the destination's write
 * completes. Completions come in write order, so one shared callback releases the oldest
 * buffer; no closure and no allocation per bulk chunk (beyond the view of a partly filled
 * buffer). Reading pauses
 * while the destination is over its high-water mark ('drain' resumes it) or while RING
 * buffers are in flight (a completion resumes it).
 *
 * A destination that was destroyed completes or errors its writes in no particular order,
 * so from then on no buffer is reused: the ring is dropped for the collector.
 */
export class ReadBuffers {
  private socket: Socket | null = null;
  private dst: Writable | null = null;
  private halted = false;
  private waitDrain = false;
  private waitRing = false;
  private armed: Buffer = SCRATCH;
  /** The last read filled at least the small buffer: arm a bulk buffer next. */
  private bulk = false;
  /** The armed buffer went into a write by reference (it is in the ring). */
  private lent = false;
  /** Bulk buffers no write references: re-armed before a new one is allocated. */
  private readonly free: Buffer[] = [];
  private readonly ring: (Buffer | undefined)[] = new Array<Buffer | undefined>(RING);
  private head = 0;
  private inFlight = 0;

  /** The socket this reader fills; set once, right after the socket is constructed. */
  bind(socket: Socket): void {
    this.socket = socket;
  }

  /**
   * The splice takes the socket's reads from here on. Bytes already pushed into the
   * readable side (read before the splice, or unshifted by a handshake reader) still come
   * as 'data', and they come first: they flow on the next tick after resume(), before
   * libuv can deliver another read.
   */
  attach(dst: Writable): void {
    this.dst = dst;
  }

  /** The splice is over (failed or closed): reads are dropped and nothing resumes the socket. */
  halt(): void {
    this.halted = true;
  }

  /** The destination drained: read again unless buffers are still in flight. */
  drained(): void {
    this.waitDrain = false;
    if (!this.waitRing && !this.halted) this.socket?.resume();
  }

  /** Node's onread.buffer: the buffer for the next read, called at socket setup and after every read. */
  readonly next = (): Buffer => {
    const prev = this.armed;
    if (prev !== SCRATCH && !this.lent) this.free.push(prev);
    this.lent = false;
    if (!this.bulk) {
      // Quiet again: keep no bulk buffer while idle; the collector takes them.
      this.free.length = 0;
      return (this.armed = SCRATCH);
    }
    return (this.armed = this.free.pop() ?? Buffer.allocUnsafeSlow(BULK_SIZE));
  };

  /** Node's onread.callback: `n` bytes were read into `buf`; false stops reading. */
  readonly onRead = (n: number, buf: Buffer): boolean => {
    // A read that filled the small buffer may have left more in the kernel: go bulk.
    this.bulk = n >= SMALL_SIZE;
    const dst = this.dst;
    if (dst === null || buf === SCRATCH) {
      const copy = Buffer.allocUnsafe(n);
      buf.copy(copy, 0, 0, n);
      if (dst === null) return this.socket !== null && this.socket.push(copy);
      if (this.halted) return false;
      if (!dst.write(copy)) this.waitDrain = true;
      return !this.waitDrain && !this.waitRing;
    }
    if (this.halted) return false;
    this.ring[(this.head + this.inFlight) % RING] = buf;
    this.inFlight++;
    this.lent = true;
    if (!dst.write(n === buf.length ? buf : buf.subarray(0, n), this.onWritten)) this.waitDrain = true;
    if (this.inFlight === RING) this.waitRing = true;
    return !this.waitDrain && !this.waitRing;
  };

  /** The shared write completion: the oldest buffer in the ring is free again. */
  private readonly onWritten = (err?: Error | null): void => {
    if (this.inFlight === 0) return;
    if (err || this.dst?.destroyed === true) {
      this.ring.fill(undefined);
      this.inFlight = 0;
      this.halted = true;
      return;
    }
    const buf = this.ring[this.head] as Buffer;
    this.ring[this.head] = undefined;
    this.head = (this.head + 1) % RING;
    this.inFlight--;
    // A quiet socket keeps no bulk buffer (see next()).
    if (this.bulk) this.free.push(buf);
    if (this.waitRing) {
      this.waitRing = false;
      if (!this.waitDrain && !this.halted) this.socket?.resume();
    }
  };
}

/**
 * What Node 20's `new net.Socket()` reads (documented there; the bundled type definitions
 * list only some of these).
 */
export interface PooledSocketOpts extends SocketConstructorOpts {
  readonly noDelay?: boolean;
}

/** A plain TCP socket that reads through its own ReadBuffers (see there). */
export class PooledReadSocket extends Socket {
  readonly readBuffers: ReadBuffers;

  constructor(opts: PooledSocketOpts) {
    const reader = new ReadBuffers();
    const onread: OnReadOpts = { buffer: reader.next, callback: reader.onRead };
    super({ ...opts, onread } as SocketConstructorOpts);
    this.readBuffers = reader;
    reader.bind(this);
  }
}

/**
 * A connected socket that Node made (a `net.Server`'s accepted socket, which takes no
 * `onread`) as a PooledReadSocket: the same connection through a duplicate descriptor, the
 * original handle closed in the same turn before any byte was read. Null when the socket
 * has no descriptor or it cannot be duplicated; the caller then keeps the original.
 */
export function readoptSocket(socket: Socket, dupFd: (fd: number) => number): PooledReadSocket | null {
  let dup: number | null;
  try {
    dup = duplicateSocketFd(socket, dupFd);
  } catch {
    return null;
  }
  if (dup === null) return null;
  const adopted = new PooledReadSocket({ fd: dup, allowHalfOpen: true, readable: true, writable: true });
  socket.destroy();
  return adopted;
}

/** The reader of a socket made as a PooledReadSocket, or null for any other duplex. */
export function readBuffersOf(d: unknown): ReadBuffers | null {
  return d instanceof PooledReadSocket ? d.readBuffers : null;
}
