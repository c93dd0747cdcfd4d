// Checkpoints for hot backup, held under leases. A checkpoint is a RocksDB
// checkpoint (hard links, O(1) in data size) in <data_dir>/checkpoints/node-<id>/.
// Writes are never paused: the counts and consensus figures returned are read
// from the checkpoint itself (the counts live in the store's meta column family,
// written atomically with the objects), so they are exactly the checkpoint's
// whatever the write load. A lease ends when its owner
// releases it, when the owner's admin connection closes (CLI crashed), or when
// its TTL passes without renewal (CLI hung); the dir is then deleted. Leftovers
// of a crashed node are deleted at start.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { GutsError } from '../errors';
import { CheckpointInfo, Counts, native } from '../native';
import { dataDirLayout, GutsStore } from '../store';
import { Logger } from './log';

export const DEFAULT_LEASE_MS = 10 * 60_000;
export const MAX_LEASE_MS = 24 * 3_600_000;
export const NODE_CHECKPOINT_PREFIX = 'node-';

export interface CheckpointResult {
  id: string;
  dir: string;
  info: CheckpointInfo;
  /** absent when the client asked to read them from the checkpoint itself (describe: false) */
  counts?: Counts;
  consensus?: { blocks: number; finalizedHeight: number };
  /** with WAL archiving on: the timeline and the first segment a replay onto this checkpoint needs */
  wal?: { timeline: number; segment: number };
  /** lease length; the client renews well before it ends */
  leaseMs: number;
  expires: string;
  /** checkpoint + reading its figures */
  createdMs: number;
}

interface Lease {
  id: string;
  dir: string;
  owner: object | null;
  leaseMs: number;
  expiresAt: number;
  timer: NodeJS.Timeout;
  created: string;
}

export class CheckpointManager {
  private readonly leases = new Map<string, Lease>();
  private readonly root: string;
  private stopped = false;
  /** latency of the last checkpoint, for metrics */
  last: { createdMs: number } | null = null;
  total = 0;
  /** set by the node when WAL archiving is on (MANIFEST.json `wal`) */
  walPosition: (() => { timeline: number; segment: number }) | null = null;

  constructor(
    dataDir: string,
    private readonly store: () => GutsStore | null,
    private readonly log: Logger,
    private readonly defaultLeaseMs = DEFAULT_LEASE_MS,
  ) {
    this.root = dataDirLayout(dataDir).checkpoints;
  }

  get active(): number {
    return this.leases.size;
  }

  list(): Array<{ id: string; dir: string; created: string; expires: string }> {
    return [...this.leases.values()].map((l) => ({ id: l.id, dir: l.dir, created: l.created, expires: new Date(l.expiresAt).toISOString() }));
  }

  /** Deletes node-* checkpoints left by a node that did not stop cleanly. */
  async removeLeftovers(): Promise<string[]> {
    let names: string[];
    try {
      names = await fs.promises.readdir(this.root);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const removed: string[] = [];
    for (const n of names) {
      if (!n.startsWith(NODE_CHECKPOINT_PREFIX)) continue; // other tools' checkpoints are theirs
      await fs.promises.rm(path.join(this.root, n), { recursive: true, force: true });
      removed.push(n);
    }
    if (removed.length) this.log.info('removed leftover checkpoints', { count: removed.length, names: removed.join(',') });
    return removed;
  }

  /**
   * describe = false: skip reading the counts from the checkpoint (a read-only
   * open that replays its WAL copy, ~100 ms of node CPU with 30 MB of WAL);
   * a hot-backup CLI does that itself at background priority.
   */
  async create(which: { db: boolean; consensus: boolean }, owner: object | null, leaseMs = this.defaultLeaseMs, describe = true): Promise<CheckpointResult> {
    if (this.stopped) throw new GutsError('GUTS_CLOSED', 'node is shutting down');
    if (!which.db && !which.consensus) throw new GutsError('GUTS_INVALID_ARGUMENT', 'checkpoint needs db and/or consensus');
    if (!Number.isFinite(leaseMs) || leaseMs <= 0 || leaseMs > MAX_LEASE_MS) {
      throw new GutsError('GUTS_INVALID_ARGUMENT', `checkpoint lease must be between 1ms and 24h, got ${leaseMs}ms`);
    }
    const store = this.store();
    if (!store) throw new GutsError('GUTS_CLOSED', 'the store is not open (node starting or stopping)');
    await fs.promises.mkdir(this.root, { recursive: true, mode: 0o700 });
    const id = `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
    const dir = path.join(this.root, NODE_CHECKPOINT_PREFIX + id);

    const t0 = performance.now();
    // Read before the checkpoint: replay from this segment covers every batch after the checkpoint's sequences.
    const walAt = this.walPosition?.();
    const info = await store.native.checkpoint(dir, which);
    let taken: { counts?: Counts; consensus?: { blocks: number; finalizedHeight: number } } = {};
    try {
      if (describe) taken = await describeCheckpoint(dir, which);
    } catch (e) {
      await fs.promises.rm(dir, { recursive: true, force: true });
      throw e;
    }
    const createdMs = performance.now() - t0;
    this.last = { createdMs };
    this.total++;

    if (this.stopped) {
      // Shutdown began while we were checkpointing: nobody will release it.
      await fs.promises.rm(dir, { recursive: true, force: true });
      throw new GutsError('GUTS_CLOSED', 'node is shutting down');
    }
    const lease: Lease = {
      id,
      dir,
      owner,
      leaseMs,
      expiresAt: Date.now() + leaseMs,
      timer: this.expiryTimer(id, leaseMs),
      created: new Date().toISOString(),
    };
    this.leases.set(id, lease);
    this.log.info('checkpoint created', {
      id,
      db: which.db,
      consensus: which.consensus,
      ms: round(createdMs),
      ...(taken.counts ? { objects: taken.counts.commit + taken.counts.tree + taken.counts.blob + taken.counts.tag } : {}),
      lease_s: leaseMs / 1000,
    });
    return {
      id,
      dir,
      info,
      ...taken,
      ...(walAt ? { wal: { timeline: walAt.timeline, segment: walAt.segment } } : {}),
      leaseMs,
      expires: new Date(lease.expiresAt).toISOString(),
      createdMs: round(createdMs),
    };
  }

  /** Extends the leases of ids (or of every checkpoint the owner holds). */
  renew(ids: string[] | null, owner: object | null): Array<{ id: string; expires: string }> {
    const out: Array<{ id: string; expires: string }> = [];
    for (const l of this.leases.values()) {
      if (ids ? !ids.includes(l.id) : l.owner !== owner || owner === null) continue;
      clearTimeout(l.timer);
      l.expiresAt = Date.now() + l.leaseMs;
      l.timer = this.expiryTimer(l.id, l.leaseMs);
      out.push({ id: l.id, expires: new Date(l.expiresAt).toISOString() });
    }
    if (ids) {
      const missing = ids.filter((id) => !this.leases.has(id));
      if (missing.length) throw new GutsError('GUTS_NOT_FOUND', `no such checkpoint: ${missing.join(', ')} (expired or released)`);
    }
    return out;
  }

  async release(id: string, why = 'released'): Promise<boolean> {
    const l = this.leases.get(id);
    if (!l) return false;
    this.leases.delete(id);
    clearTimeout(l.timer);
    try {
      await fs.promises.rm(l.dir, { recursive: true, force: true });
    } catch (e) {
      this.log.error('cannot remove checkpoint', { id, dir: l.dir, error: (e as Error).message });
      throw e;
    }
    this.log.info(`checkpoint ${why}`, { id });
    return true;
  }

  /** The owner's connection closed: its checkpoints go. */
  async releaseOwner(owner: object): Promise<void> {
    const ids = [...this.leases.values()].filter((l) => l.owner === owner).map((l) => l.id);
    for (const id of ids) await this.release(id, 'released (owner disconnected)').catch(() => undefined);
  }

  /**
   * Shutdown: stop the lease timers but leave held checkpoints on disk, so a
   * backup reading one can finish; the next start removes them.
   */
  stop(): void {
    this.stopped = true;
    for (const l of this.leases.values()) clearTimeout(l.timer);
    if (this.leases.size) this.log.info('leaving held checkpoints for their readers (removed at next start)', { count: this.leases.size });
    this.leases.clear();
  }

  private expiryTimer(id: string, ms: number): NodeJS.Timeout {
    const t = setTimeout(() => {
      this.log.warn('checkpoint lease expired, removing it', { id });
      void this.release(id, 'expired').catch(() => undefined);
    }, ms);
    t.unref();
    return t;
  }
}

/**
 * Counts and consensus figures of a checkpoint, from a read-only open of it.
 * The open leaves LOG and IDENTITY files behind; they are removed again so the
 * checkpoint holds exactly what RocksDB put there.
 */
export async function describeCheckpoint(
  dir: string,
  which: { db: boolean; consensus: boolean },
): Promise<{ counts: Counts; consensus: { blocks: number; finalizedHeight: number } }> {
  const subdirs = [which.db && path.join(dir, 'db'), which.consensus && path.join(dir, 'consensus')].filter(Boolean) as string[];
  const before = new Map(subdirs.map((d) => [d, new Set(fs.readdirSync(d))]));
  const ro = new native.Store(dir, { readOnly: true, create: false, db: which.db, consensus: which.consensus });
  await ro.open();
  try {
    return {
      counts: which.db ? await ro.counts() : { commit: 0, tree: 0, blob: 0, tag: 0, repositories: 0 },
      consensus: which.consensus ? await ro.consensusInfo() : { blocks: 0, finalizedHeight: 0 },
    };
  } finally {
    await ro.close();
    for (const [d, names] of before) {
      for (const n of fs.readdirSync(d)) if (!names.has(n)) fs.rmSync(path.join(d, n), { recursive: true, force: true });
    }
  }
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
