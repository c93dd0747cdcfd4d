// Maintenance mode: writes stop (HTTP 503 + Retry-After, admin GUTS_MAINTENANCE),
// in-flight writes drain, memtables are flushed and WALs synced, so an LVM/ZFS
// snapshot of the data dir taken now is consistent. Reads keep working. The node
// leaves maintenance by itself after the timeout, so a forgotten one never wedges it.
import { GutsError } from '../errors';
import { GutsStore } from '../store';
import { Logger } from './log';
import { WriteGate } from './write-gate';

export const DEFAULT_MAINTENANCE_MS = 10 * 60_000;
/** setTimeout's limit is ~24.8 days; a day is already far longer than any snapshot. */
export const MAX_MAINTENANCE_MS = 24 * 3_600_000;

export interface MaintenanceState {
  active: boolean;
  since?: string;
  until?: string;
}

export class Maintenance {
  private since: Date | null = null;
  private until: Date | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly gate: WriteGate,
    private readonly store: () => GutsStore | null,
    private readonly log: Logger,
  ) {}

  get active(): boolean {
    return this.until !== null;
  }

  state(): MaintenanceState {
    if (!this.until) return { active: false };
    return { active: true, since: this.since!.toISOString(), until: this.until.toISOString() };
  }

  /** Seconds until the node leaves maintenance (for Retry-After), at least 1. */
  retryAfterSeconds(): number {
    if (!this.until) return 1;
    return Math.max(1, Math.ceil((this.until.getTime() - Date.now()) / 1000));
  }

  /**
   * Enters (or extends) maintenance; resolves once the stores are flushed and
   * synced. If the flush fails the node leaves maintenance again and throws:
   * a snapshot taken now would not be consistent.
   */
  async enter(timeoutMs: number): Promise<{ until: string; alreadyActive: boolean; flushMs: number }> {
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0 || timeoutMs > MAX_MAINTENANCE_MS) {
      throw new GutsError('GUTS_INVALID_ARGUMENT', `maintenance timeout must be between 1ms and 24h, got ${timeoutMs}ms`);
    }
    const store = this.store();
    if (!store) throw new GutsError('GUTS_CLOSED', 'the store is not open (node starting or stopping)');
    const alreadyActive = this.active;
    if (!alreadyActive) this.since = new Date();
    this.until = new Date(Date.now() + timeoutMs);
    const until = this.until;
    this.gate.setMaintenance(`node is in maintenance mode until ${until.toISOString()} (writes paused)`);
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.log.warn('maintenance timeout reached, leaving maintenance mode', { since: this.since?.toISOString() });
      this.exit();
    }, timeoutMs);
    this.timer.unref();

    const t0 = performance.now();
    try {
      await this.gate.drained();
      await store.flush();
    } catch (e) {
      this.log.error('flush failed, leaving maintenance mode', { error: (e as Error).message });
      this.exit();
      throw e;
    }
    const flushMs = Math.round((performance.now() - t0) * 10) / 10;
    this.log.info(alreadyActive ? 'maintenance extended' : 'entered maintenance mode', { until: until.toISOString(), flush_ms: flushMs });
    return { until: until.toISOString(), alreadyActive, flushMs };
  }

  /** Leaves maintenance; false if the node was not in maintenance. */
  exit(): boolean {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (!this.until) return false;
    const since = this.since;
    this.until = null;
    this.since = null;
    this.gate.setMaintenance(null);
    this.log.info('left maintenance mode, writes resumed', { duration_s: since ? Math.round((Date.now() - since.getTime()) / 100) / 10 : undefined });
    return true;
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
