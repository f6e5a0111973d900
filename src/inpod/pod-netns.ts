import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as net from 'node:net';
import type { SocketFactory } from '../transport/dial';
import type { NetnsAddon } from './netns-addon';


/**
 * One pod's network namespace, held open by its descriptor (from ZDS SCM_RIGHTS or opened
 * from a path), and the sockets the node proxy makes inside it. It owns the descriptor and
 * closes it exactly once; every socket it returns belongs to its caller (a listener to the
 * pod's listener set, a dial socket to the connection that dials it).
 */
export class PodNetns {
  private closed = false;

  /** @param fd a network namespace descriptor; ownership passes to this object. */
  constructor(
    private readonly addon: NetnsAddon,
    readonly fd: number,
    /** The namespace's inode: the same pod re-added with the same namespace is a no-op, a new one replaces it. */
    readonly inode: number,
    private readonly mark: number,
    /** False for a borrowed descriptor: close() then only stops this object from using it. */
    private readonly owns = true,
  ) {}

  /**
   * Uses a descriptor another owner keeps open (a data-path worker thread dials with the
   * main thread's duplicate, which the main thread closes after the pod left every worker).
   */
  static borrow(addon: NetnsAddon, fd: number, mark: number): PodNetns {
    return new PodNetns(addon, fd, netnsInode(fd), mark, false);
  }

  /**
   * Adopts a descriptor received from the agent. Throws (and closes it) when it is not a
   * network namespace, so a wrong descriptor never reaches setns.
   */
  static adopt(addon: NetnsAddon, fd: number, mark: number): PodNetns {
    let inode: number;
    try {
      inode = netnsInode(fd);
    } catch (err) {
      closeQuietly(fd);
      throw err;
    }
    return new PodNetns(addon, fd, inode, mark);
  }

  /** Opens a namespace by path: /var/run/netns/<name> or /proc/<pid>/ns/net. */
  static open(addon: NetnsAddon, path: string, mark: number): PodNetns {
    return PodNetns.adopt(addon, fs.openSync(path, 'r'), mark);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * A TCP server listening on host:port inside the namespace (`::` = dual stack). With
   * reusePort a second node proxy can bind the same port beside this one (rolling update).
   */
  listenTcp(host: string, port: number, reusePort: boolean, opts: net.ServerOpts = {}): Promise<net.Server> {
    this.assertOpen();
    const fd = this.addon.netnsTcpListener(this.fd, host, port, this.mark, reusePort);
    const server = net.createServer({ allowHalfOpen: true, ...opts });
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => {
        server.close();
        closeQuietly(fd);
        reject(err);
      };
      server.once('error', onError);
      server.listen({ fd }, () => {
        server.off('error', onError);
        resolve(server);
      });
    });
  }

  /** An unconnected TCP socket in the namespace with SO_MARK (so the pod's capture rules skip it). */
  readonly tcpSocket: SocketFactory = (family, localAddress, transparent = false) => {
    this.assertOpen();
    const fd = this.addon.netnsTcpSocket(this.fd, family, this.mark, localAddress ?? null, transparent);
    try {
      return new net.Socket({ fd, allowHalfOpen: true, readable: true, writable: true });
    } catch (err) {
      closeQuietly(fd);
      throw err;
    }
  };

  /** A UDP socket bound inside the namespace, marked (DNS forwarding from the pod). */
  udpSocket(host: string, port: number, reusePort = false): Promise<dgram.Socket> {
    this.assertOpen();
    const fd = this.addon.netnsUdpSocket(this.fd, host, port, this.mark, reusePort);
    const sock = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => {
        sock.close();
        reject(err);
      };
      sock.once('error', onError);
      sock.bind({ fd }, () => {
        sock.off('error', onError);
        resolve(sock);
      });
    });
  }

  /** Writes a per-namespace sysctl (`net/...`) inside the pod's namespace. */
  sysctl(name: string, value: string): void {
    this.assertOpen();
    this.addon.netnsSysctl(this.fd, name, value);
  }

  /** Closes the namespace descriptor (sockets made in it keep working until their owners close them). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.owns) closeQuietly(this.fd);
  }

  private assertOpen(): void {
    if (this.closed) throw new Error(`pod network namespace (inode ${this.inode}) is already closed`);
  }
}

/**
 * The inode of a namespace descriptor; throws naming what the descriptor is instead.
 * Namespace files (also bind mounts under /var/run/netns) live on the kernel's nsfs, the
 * device of our own /proc/self/ns/net; setns(CLONE_NEWNET) rejects other namespace types.
 */
export function netnsInode(fd: number): number {
  const st = fs.fstatSync(fd);
  if (st.dev !== fs.statSync('/proc/self/ns/net').dev) {
    let what = 'unknown';
    try {
      what = fs.readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      // descriptor without a /proc link: "unknown" is the best description
    }
    throw new Error(`descriptor ${fd} is not a network namespace (it is ${what})`);
  }
  return st.ino;
}

export function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // already closed: nothing to release
  }
}
