import * as fs from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import type { Logger } from 'pino';
import type { Component } from '../app/component';
import { runRedirect } from '../redirect/apply';
import type { Flavour } from '../redirect/backend';
import type { Exec } from '../redirect/exec';
import type { RedirectSpec } from '../redirect/rules';
import { ZdsServer, type AgentPodEntry } from './agent-server';
import { netnsPath, parseAgentPods, type AgentPodSpec } from './agent-pods';
import type { NetnsAddon } from './netns-addon';
import { closeQuietly } from './pod-netns';
import type { ZdsCodec } from './zds-codec';

/** How the agent installs the in-pod capture rules (the `redirect install` logic). */
export interface AgentRedirect {
  readonly exec: Exec;
  readonly spec: RedirectSpec;
  readonly backend: 'auto' | Flavour;
}

export interface NodeAgentOptions {
  readonly addon: NetnsAddon;
  readonly codec: ZdsCodec;
  /** INPOD_UDS: where node proxies connect. */
  readonly socketPath: string;
  /** The pods file, watched and re-read; null = pods are enrolled through the API only (tests). */
  readonly podsFile: string | null;
  /** null = do not touch rules (the pods already have them, or a test checks ZDS alone). */
  readonly redirect: AgentRedirect | null;
  readonly logger: Logger;
  /** Quiet period after the last file event before re-reading the pods file. */
  readonly debounceMs?: number;
}

interface Enrolled {
  readonly spec: AgentPodSpec;
  readonly entry: AgentPodEntry;
}

/**
 * A stand-in for the istio-cni node agent, for local runs, tests and hosts without
 * Kubernetes: it serves ZDS, enrols pods given as network namespaces (it opens each one and
 * hands the descriptor to every connected node proxy), installs the in-pod redirect rules
 * in each pod after the node proxies acknowledged it (so no captured packet finds no
 * listener), and on un-enrol removes the rules first, then tells the proxies. Changes are
 * applied one at a time in the order they were asked for.
 */
export class NodeAgent implements Component {
  readonly name = 'agent';
  private readonly pods = new Map<string, Enrolled>();
  private readonly server: ZdsServer;
  private chain: Promise<void> = Promise.resolve();
  private watcher: fs.FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private lastText: string | null = null;

  constructor(private readonly o: NodeAgentOptions) {
    this.server = new ZdsServer({ addon: o.addon, codec: o.codec, path: o.socketPath, logger: o.logger, snapshot: () => [...this.pods.values()].map((p) => p.entry) });
  }

  /** Reads the pods file BEFORE serving, so the first snapshot a node proxy gets is complete (an empty one would stop every pod). */
  async start(): Promise<void> {
    if (this.o.podsFile !== null) await this.reload();
    this.server.start();
    if (this.o.podsFile === null) return;
    const file = resolve(this.o.podsFile);
    this.watcher = fs.watch(dirname(file), { persistent: false }, (_e, changed) => {
      if (changed !== null && changed !== basename(file)) return;
      if (this.timer) clearTimeout(this.timer);
      this.timer = setTimeout(() => void this.reload(), this.o.debounceMs ?? 100);
    });
  }

  /** Node proxies connected (hello done). */
  get connections(): number {
    return this.server.connections;
  }

  enrolled(): string[] {
    return [...this.pods.keys()].sort();
  }

  /** Enrols one pod (idempotent by uid + netns). Rejects with what failed; a failed pod is not kept. */
  enrol(spec: AgentPodSpec): Promise<void> {
    return this.serial(() => this.doEnrol(spec));
  }

  unenrol(uid: string): Promise<void> {
    return this.serial(() => this.doUnenrol(uid));
  }

  /** Makes the enrolled set equal `specs` (pods file semantics). */
  reconcile(specs: readonly AgentPodSpec[]): Promise<void> {
    return this.serial(async () => {
      const want = new Map(specs.map((s) => [s.uid, s]));
      for (const uid of [...this.pods.keys()]) {
        const w = want.get(uid);
        if (!w || w.netns !== this.pods.get(uid)!.spec.netns) await this.report(uid, () => this.doUnenrol(uid));
      }
      for (const s of specs) if (!this.pods.has(s.uid)) await this.report(s.uid, () => this.doEnrol(s));
    });
  }

  async close(): Promise<void> {
    this.watcher?.close();
    this.watcher = null;
    if (this.timer) clearTimeout(this.timer);
    await this.chain;
    this.server.close();
    // Rules stay: with the node proxy's listeners gone, captured traffic is refused, never bypassed.
    for (const p of this.pods.values()) closeQuietly(p.entry.netnsFd);
    this.pods.clear();
  }

  destroy(): void {
    this.watcher?.close();
    this.server.close();
    for (const p of this.pods.values()) closeQuietly(p.entry.netnsFd);
    this.pods.clear();
  }

  dump(): unknown {
    return { socket: this.o.socketPath, connections: this.server.connections, pods: [...this.pods.values()].map((p) => p.spec) };
  }

  private serial(fn: () => Promise<void>): Promise<void> {
    const run = this.chain.then(fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async report(uid: string, fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      this.o.logger.error({ uid, error: (err as Error).message }, 'pod change failed');
    }
  }

  private async doEnrol(spec: AgentPodSpec): Promise<void> {
    const existing = this.pods.get(spec.uid);
    if (existing && existing.spec.netns === spec.netns) return;
    if (existing) await this.doUnenrol(spec.uid);
    const path = netnsPath(spec.netns);
    let fd: number;
    try {
      fd = fs.openSync(path, 'r');
    } catch (err) {
      throw new Error(`pod ${spec.uid}: cannot open its network namespace ${path}: ${(err as Error).message}`, { cause: err });
    }
    const entry: AgentPodEntry = { uid: spec.uid, netnsFd: fd, request: { kind: 'add', uid: spec.uid, info: { name: spec.name, namespace: spec.namespace, serviceAccount: spec.serviceAccount } } };
    this.pods.set(spec.uid, { spec, entry });
    const errors = await this.server.broadcast(entry.request, [fd]);
    if (errors.length > 0) this.o.logger.warn({ uid: spec.uid, errors }, 'a node proxy could not start the pod (it retries)');
    if (this.o.redirect) {
      try {
        const out = await runRedirect(this.o.redirect.exec, { action: 'install', spec: this.o.redirect.spec, netns: spec.netns, backend: this.o.redirect.backend, dryRun: false });
        if (out.notes.length > 0) this.o.logger.warn({ uid: spec.uid, netns: spec.netns, notes: out.notes }, 'capture rules installed with notes');
      } catch (err) {
        this.pods.delete(spec.uid);
        await this.server.broadcast({ kind: 'del', uid: spec.uid }, []);
        closeQuietly(fd);
        throw new Error(`pod ${spec.uid}: installing the capture rules in ${spec.netns} failed: ${(err as Error).message}`, { cause: err });
      }
    }
    this.o.logger.info({ uid: spec.uid, netns: spec.netns, proxies: this.server.connections }, 'pod enrolled');
  }

  private async doUnenrol(uid: string): Promise<void> {
    const p = this.pods.get(uid);
    if (!p) return;
    this.pods.delete(uid);
    try {
      if (this.o.redirect) await runRedirect(this.o.redirect.exec, { action: 'remove', spec: this.o.redirect.spec, netns: p.spec.netns, backend: this.o.redirect.backend, dryRun: false });
    } finally {
      await this.server.broadcast({ kind: 'del', uid }, []);
      closeQuietly(p.entry.netnsFd);
    }
    this.o.logger.info({ uid, netns: p.spec.netns }, 'pod un-enrolled');
  }

  private async reload(): Promise<void> {
    const file = this.o.podsFile as string;
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      this.o.logger.error({ file, error: (err as Error).message }, 'cannot read the pods file; keeping the enrolled pods');
      return;
    }
    if (text === this.lastText) return;
    const { pods, errors } = parseAgentPods(text);
    if (errors.length > 0) {
      this.o.logger.error({ file, errors }, 'pods file rejected; keeping the enrolled pods');
      return;
    }
    this.lastText = text;
    await this.reconcile(pods);
  }
}
