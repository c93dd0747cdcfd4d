// Every store write of the node (HTTP and admin socket) passes this gate, so
// the node can reject writes during maintenance and shutdown and drain the
// in-flight ones before a flush or close, and refuse writes while the WAL
// archive backlog is past wal.max_pending. Checkpoints do not pause writes.
import { GutsError } from '../errors';

export class WriteGate {
  private inflight = 0;
  private drainWaiters: Array<() => void> = [];
  private maintenanceReason: string | null = null;
  private closedReason: string | null = null;
  private walBacklog: string | null = null;

  get inFlight(): number {
    return this.inflight;
  }

  /** Runs a write; rejects during maintenance or shutdown. */
  async write<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closedReason) throw new GutsError('GUTS_CLOSED', this.closedReason);
    if (this.maintenanceReason) throw new GutsError('GUTS_MAINTENANCE', this.maintenanceReason);
    if (this.walBacklog) throw new GutsError('GUTS_WAL_BACKLOG', this.walBacklog);
    this.inflight++;
    try {
      return await fn();
    } finally {
      if (--this.inflight === 0) {
        const waiters = this.drainWaiters;
        this.drainWaiters = [];
        for (const w of waiters) w();
      }
    }
  }

  /** Resolves once no write is in flight. */
  drained(): Promise<void> {
    if (this.inflight === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** reason = null lets writes through again. */
  setMaintenance(reason: string | null): void {
    this.maintenanceReason = reason;
  }

  /** WAL segments not yet archived past wal.max_pending: writes wait for the archive command (src/wal/archiver.ts). */
  setWalBacklog(reason: string | null): void {
    this.walBacklog = reason;
  }

  get walBacklogReason(): string | null {
    return this.walBacklog;
  }

  close(reason: string): void {
    this.closedReason = reason;
  }
}
