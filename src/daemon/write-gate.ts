// Every store write of the node (HTTP and admin socket) passes this gate, so
// the node can (a) pause writes for the few ms of a checkpoint, making the
// counts it reports exactly those of the checkpoint, (b) reject writes during
// maintenance and (c) drain in-flight writes before a flush or shutdown.
import { GutsError } from '../errors';

export class WriteGate {
  private inflight = 0;
  private pauses = 0;
  private resumeWaiters: Array<() => void> = [];
  private drainWaiters: Array<() => void> = [];
  private maintenanceReason: string | null = null;
  private closedReason: string | null = null;

  get inFlight(): number {
    return this.inflight;
  }

  get paused(): boolean {
    return this.pauses > 0;
  }

  /** Runs a write, waiting out a pause; rejects during maintenance or shutdown. */
  async write<T>(fn: () => Promise<T>): Promise<T> {
    for (;;) {
      if (this.closedReason) throw new GutsError('GUTS_CLOSED', this.closedReason);
      if (this.maintenanceReason) throw new GutsError('GUTS_MAINTENANCE', this.maintenanceReason);
      if (!this.pauses) break;
      await new Promise<void>((resolve) => this.resumeWaiters.push(resolve));
    }
    this.inflight++;
    try {
      return await fn();
    } finally {
      if (--this.inflight === 0) this.wake('drain');
    }
  }

  /**
   * Pauses new writes, waits for in-flight ones, runs fn, resumes. Several
   * exclusive sections may overlap (two checkpoints at once is fine: neither writes).
   */
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    this.pauses++;
    try {
      await this.drained();
      return await fn();
    } finally {
      if (--this.pauses === 0) this.wake('resume');
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
    // Writes parked on a pause re-check the state and fail fast.
    if (reason) this.wake('resume');
  }

  close(reason: string): void {
    this.closedReason = reason;
    this.wake('resume');
  }

  private wake(which: 'drain' | 'resume'): void {
    const list = which === 'drain' ? this.drainWaiters : this.resumeWaiters;
    if (which === 'drain') this.drainWaiters = [];
    else this.resumeWaiters = [];
    for (const w of list) w();
  }
}
