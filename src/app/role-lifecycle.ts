import type { StateChange, StateView } from '../state/view';
import type { Runtime } from './runtime';

/**
 * The start/close/destroy of a role's composition root (node proxy, waypoint): its Runtime
 * (servers, components, drain) plus the one state subscription through which the role
 * follows changes (certificates, pooled sessions, metric series). The subscription lives
 * exactly as long as the role runs: taken at start, dropped after a graceful close or at
 * once on destroy, so no change is handled by a stopped role.
 */
export class RoleLifecycle {
  private unsubscribe: (() => void) | null = null;

  constructor(
    private readonly runtime: Runtime,
    private readonly state: StateView,
    private readonly onStateChange: (change: StateChange) => void,
  ) {}

  start(): ReturnType<Runtime['start']> {
    this.unsubscribe = this.state.onChange(this.onStateChange);
    return this.runtime.start();
  }

  async close(): Promise<void> {
    await this.runtime.close();
    this.unsubscribe?.();
  }

  destroy(): void {
    this.unsubscribe?.();
    this.runtime.destroy();
  }
}
