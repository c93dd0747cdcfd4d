// Continuous WAL archiving inside the node (docs/NODE.md "WAL archiving").
// Off the request path: a timer loop tails committed batches of both stores
// (native walTail on libuv workers), cuts segments (closed archive_timeout
// after their first write, or at segment_size), fsyncs and renames them into
// wal/pending/, then hands them in order to the archive command (or the
// built-in archive dir), retrying with backoff; it never drops a segment: past
// wal.max_pending the node refuses writes instead.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { GutsConfig, parseDuration, parseSize } from '../config';
import { GutsError } from '../errors';
import { writeFileAtomicAsync } from '../fsutil';
import { native, WalDbName } from '../native';
import type { GutsStore } from '../store';
import type { Logger } from '../daemon/log';
import type { WriteGate } from '../daemon/write-gate';
import { describeWalCommandFailure, runWalCommand } from './command';
import { encodeHistory, encodeSegment, historyName, segmentName, WalRecord, ZERO_CHECKSUM } from './segment';
import { dropAbandoned, historyTaken, renumberTimeline } from './reclaim';
import { adoptPending, newestArchivedTimeline, PendingEntry, readDbIdentity, removeTempFiles, startAfterArchivedTimeline } from './resume';
import { comparePending, ensureWalDirs, newWalState, readWalState, WalPosition, WalState, walLayout, writeWalStateAsync } from './state';
import { walSink, WalSink } from './target';

const DBS: WalDbName[] = ['db', 'consensus'];
const BACKOFF_START_MS = 1000;
const BACKOFF_MAX_MS = 60_000;
/** a hung command must not wedge the queue forever: it is killed and retried */
const COMMAND_TIMEOUT_MS = 10 * 60_000;
/** how long a clean stop keeps archiving what is pending */
const FINAL_PUSH_MS = 5000;

export interface WalSettings {
  archiveCommand: string;
  archiveDir: string;
  archiveTimeoutMs: number;
  segmentSize: number;
  maxPending: number;
}

/** Archiving is on when a command or the built-in archive dir is configured. */
export function walSettings(cfg: GutsConfig): WalSettings | null {
  const w = cfg.wal;
  if (!w.archive_command && !w.archive_dir) return null;
  return {
    archiveCommand: w.archive_command,
    archiveDir: w.archive_dir,
    archiveTimeoutMs: parseDuration(w.archive_timeout),
    segmentSize: parseSize(w.segment_size),
    maxPending: parseSize(w.max_pending),
  };
}

export interface WalStatus {
  archiving: boolean;
  timeline: number;
  needs_base_backup: boolean;
  last_archived: WalState['last_archived'];
  pending_segments: number;
  pending_bytes: number;
  archived_segments_total: number;
  archive_failures_total: number;
  timeline_switches_total: number;
  last_error: WalState['last_error'];
  /** writes refused: pending_bytes > max_pending_bytes */
  backlog: boolean;
  max_pending_bytes: number | null;
  open_segment: { segment: number; records: number; bytes: number; first_commit_time: string | null } | null;
  db_next_seq: number;
  consensus_next_seq: number;
  archive_lag_seconds: number;
  next_attempt: string | null;
}

interface OpenSegment {
  records: WalRecord[];
  bytes: number;
  /** when the first record was taken in (ms) */
  firstAt: number;
}

export class WalArchiver {
  private state!: WalState;
  private pending: PendingEntry[] = [];
  private open: OpenSegment = { records: [], bytes: 0, firstAt: 0 };
  /** the next sequence to tail per store (ahead of state by the open segment) */
  private tailNext = { db: 1, consensus: 1 };
  private timer: NodeJS.Timeout | null = null;
  /** tail passes run one after the other (timer, wal mark, shutdown) */
  private readonly passes = new SerialQueue();
  /** state.json writes, one at a time: the tail (segment closes) and the archive loop both advance it */
  private readonly stateWrites = new SerialQueue();
  private pushing: Promise<void> | null = null;
  private stopped = false;
  /** the last archive round during stop() */
  private draining = false;
  private backoffMs = 0;
  /** smoothed time from a segment's close to its successful archive (ms) */
  private archiveLatencyMs = 0;
  /** consecutive failed tail passes (log throttling) */
  private tailFailures = 0;
  private nextAttemptAt = 0;
  private abort = new AbortController();
  private readonly sink: WalSink | null;
  private readonly pollMs: number;

  constructor(
    private readonly dataDir: string,
    private readonly settings: WalSettings,
    private readonly store: () => GutsStore | null,
    private readonly log: Logger,
    private readonly gate: WriteGate,
    private readonly config: GutsConfig,
  ) {
    this.sink = settings.archiveCommand ? null : walSink(config);
    // Tailing is cheap (a kept log iterator; nothing new = one sequence compare).
    this.pollMs = Math.max(20, Math.min(100, Math.floor(settings.archiveTimeoutMs / 20)));
  }

  /** Before the store opens: DATA_DIR/wal/ must exist then, so RocksDB keeps every WAL file for us. */
  static prepare(dataDir: string): void {
    ensureWalDirs(dataDir);
  }

  /** Loads state.json and pending/ (adopting a segment renamed in just before a crash), then starts the loops. */
  async start(): Promise<void> {
    const store = this.requireStore();
    ensureWalDirs(this.dataDir);
    const seqs = store.native.sequences();
    const loaded = readWalState(this.dataDir);
    this.state = loaded ?? newWalState(seqs.db + 1, seqs.consensus + 1);
    if (!loaded) {
      this.log.warn('WAL archiving starts here: take a base backup (guts-node backup create) to make the archive restorable', { db_seq: seqs.db, consensus_seq: seqs.consensus });
      const newest = await newestArchivedTimeline(this.dataDir, this.config, this.log);
      if (newest) await startAfterArchivedTimeline(this.dataDir, this.state, newest, this.log);
    }
    removeTempFiles(this.dataDir);
    this.pending = dropAbandoned(this.dataDir, this.state, adoptPending(this.dataDir, this.state, this.log));
    // A crash after the command succeeded but before the file was deleted.
    const done = this.state.last_archived;
    const doneKey = done ? this.pending.find((p) => p.name === done.name) : undefined;
    while (doneKey && this.pending.length && comparePending(this.pending[0], doneKey) <= 0) {
      const p = this.pending.shift()!;
      fs.rmSync(path.join(walLayout(this.dataDir).pending, p.name), { force: true });
      this.log.info('WAL segment already archived before a restart', { segment: p.name });
    }
    this.tailNext = { db: this.state.db_next_seq, consensus: this.state.consensus_next_seq };
    this.resetOpen();
    // A store replaced under the archive (a plain restore, a copied data dir)
    // has another RocksDB identity: its sequences belong to another history.
    const identity = readDbIdentity(this.dataDir);
    if (loaded?.db_identity && identity && loaded.db_identity !== identity) {
      await this.newTimeline({ db: seqs.db + 1, consensus: seqs.consensus + 1 }, { reason: 'the store was replaced (db/IDENTITY changed)', was: loaded.db_identity, now: identity });
    }
    if (identity) this.state.db_identity = identity;
    await this.saveState();
    this.updateGate();
    this.log.info('WAL archiving on', {
      timeline: this.state.timeline,
      next_segment: this.state.next_segment,
      pending: this.pending.length,
      target: this.settings.archiveCommand ? `archive_command ${this.settings.archiveCommand}` : this.sink!.describe,
      archive_timeout_ms: this.settings.archiveTimeoutMs,
      segment_size: this.settings.segmentSize,
    });
    this.schedule(0);
    this.kickPush();
  }

  /** Graceful stop: the open segment is closed into pending/ (archived at the next start if not now). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.abort.abort();
    await this.passes.idle();
    await this.pushing?.catch(() => undefined);
    if (this.store()) {
      try {
        await this.tailOnce(true);
      } catch (e) {
        this.log.error('WAL: cannot close the open segment at shutdown (it is rebuilt from the WAL at the next start)', { error: (e as Error).message });
      }
    }
    // One bounded last round, so a clean stop leaves nothing pending when the archive is up.
    if (this.pending.length && this.backoffMs === 0) {
      this.abort = new AbortController();
      const timer = setTimeout(() => this.abort.abort(), FINAL_PUSH_MS);
      this.draining = true;
      try {
        await this.pushLoop();
      } catch (e) {
        this.log.warn('WAL: last archive round at shutdown failed', { error: (e as Error).message });
      } finally {
        clearTimeout(timer);
        this.draining = false;
      }
    }
    if (this.pending.length) this.log.info('WAL segments left in pending/ for the next start', { pending: this.pending.length, pending_bytes: this.pendingBytes });
  }

  // ---- queries ----

  position(): WalPosition & { prev_checksum: string } {
    return { timeline: this.state.timeline, segment: this.state.next_segment, db_seq: this.state.db_next_seq - 1, consensus_seq: this.state.consensus_next_seq - 1, prev_checksum: this.state.prev_checksum };
  }

  get pendingBytes(): number {
    return this.pending.reduce((n, p) => n + p.bytes, 0);
  }

  get backlog(): boolean {
    return this.pendingBytes > this.settings.maxPending;
  }

  status(): WalStatus {
    const s = this.state;
    const first = this.open.records[0];
    return {
      archiving: true,
      timeline: s.timeline,
      needs_base_backup: s.needs_base_backup,
      last_archived: s.last_archived,
      pending_segments: this.pending.filter((p) => p.kind === 'segment').length,
      pending_bytes: this.pendingBytes,
      archived_segments_total: s.archived_segments_total,
      archive_failures_total: s.archive_failures_total,
      timeline_switches_total: s.timeline_switches_total,
      last_error: s.last_error,
      backlog: this.backlog,
      max_pending_bytes: this.settings.maxPending,
      open_segment: this.open.records.length
        ? { segment: s.next_segment, records: this.open.records.length, bytes: this.open.bytes, first_commit_time: first.timeUs ? new Date(first.timeUs / 1000).toISOString() : null }
        : null,
      db_next_seq: s.db_next_seq,
      consensus_next_seq: s.consensus_next_seq,
      archive_lag_seconds: this.lagSeconds(),
      next_attempt: this.nextAttemptAt > Date.now() ? new Date(this.nextAttemptAt).toISOString() : null,
    };
  }

  /** Seconds since the oldest commit not yet archived (0 when all is archived): the data at risk now. */
  lagSeconds(): number {
    const oldest = this.pending.find((p) => p.kind === 'segment' && p.firstTimeUs)?.firstTimeUs || this.open.records[0]?.timeUs || 0;
    return oldest ? Math.max(0, Date.now() / 1000 - oldest / 1e6) : 0;
  }

  /** A base backup of this timeline was taken: the note goes away. */
  async noteBaseBackup(timeline: number): Promise<void> {
    if (timeline !== this.state.timeline || !this.state.needs_base_backup) return;
    this.state.needs_base_backup = false;
    await this.saveState();
  }

  /**
   * `wal mark NAME`: writes the restore point (through the write gate) and
   * closes the segment holding it, so it is archived now rather than at the
   * next timeout.
   */
  async mark(name: string): Promise<{ name: string; seq: number; time: string; segment: string }> {
    if (typeof name !== 'string' || !/^[A-Za-z0-9._:@+-]{1,200}$/.test(name)) {
      throw new GutsError('GUTS_INVALID_ARGUMENT', `invalid restore point name ${JSON.stringify(name)} (1-200 of A-Z a-z 0-9 . _ : @ + -)`);
    }
    // --until-mark stops at the first restore point of a name: a second one would never be reachable.
    if (this.state.marks?.includes(name)) throw new GutsError('GUTS_EXISTS', `restore point ${name} already exists on this node: choose another name`);
    this.state.marks = [...(this.state.marks ?? []), name]; // taken before the write: two concurrent marks of one name cannot both pass
    let m: Awaited<ReturnType<typeof native.walMark>>;
    try {
      m = await this.gate.write(() => native.walMark(this.requireStore().native, name));
    } catch (e) {
      this.state.marks = this.state.marks.filter((n) => n !== name);
      throw e;
    }
    await this.saveState();
    // Tail until the mark is in, then close: the mark's segment is named and queued.
    for (let i = 0; i < 1000 && this.tailNext.db <= m.seq; i++) await this.tailOnce(false);
    if (this.tailNext.db <= m.seq) throw new GutsError('GUTS_INTERNAL', `restore point at ${m.seq} not reached by the WAL tail`);
    await this.tailOnce(true);
    const segment = segmentName(this.state.timeline, this.state.next_segment - 1);
    return { name, seq: m.seq, time: new Date(m.timeUs / 1000).toISOString(), segment };
  }

  // ---- tail loop ----

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.tailOnce(false)
        .then(
          () => (this.tailFailures = 0),
          (e) => {
            // e.g. a full disk while sealing: the batches stay in the open segment; retried every poll, logged every 10 s
            if (this.tailFailures++ % Math.max(1, Math.round(10_000 / this.pollMs)) === 0)
              this.log.error('WAL tail or segment close failed (retrying; nothing is dropped)', { error: (e as Error).message, failures: this.tailFailures });
          },
        )
        .finally(() => this.schedule(this.pollMs));
    }, ms);
  }

  /** One pass: tail both stores; close the open segment when due (or when closing = shutdown). Serialized. */
  private tailOnce(closing: boolean): Promise<void> {
    return this.serialized(() => this.tailPass(closing));
  }

  /** Runs fn after every tail pass, segment close or timeline change before it, and before any after it. */
  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    return this.passes.run(fn);
  }

  /** Writes state.json from the state as it is when the write starts (two renames racing could leave the older state on disk). */
  private saveState(): Promise<void> {
    return this.stateWrites.run(() => writeWalStateAsync(this.dataDir, this.state));
  }

  private async tailPass(closing: boolean): Promise<void> {
    const store = this.store();
    if (!store) return;
    for (const db of DBS) {
      for (;;) {
        // Read no further than the segment's room: a segment overshoots
        // segment_size by at most one batch (the reader stops after the batch
        // that crosses maxBytes), however many batches wait.
        const room = Math.max(1, this.settings.segmentSize - this.open.bytes);
        const r = await native.walTail(store.native, db, this.tailNext[db], { maxBytes: room, maxBatches: 20_000 });
        if (r.gap) {
          await this.switchTimeline(db, r.gap, r.latest);
          continue;
        }
        for (const b of r.batches) {
          const rec: WalRecord = { db, seq: b.seq, count: b.count, timeUs: b.timeUs, data: b.data };
          if (b.mark !== undefined) rec.mark = b.mark;
          if (!this.open.records.length) this.open.firstAt = Date.now();
          this.open.records.push(rec);
          this.open.bytes += b.data.length;
          this.tailNext[db] = b.seq + b.count;
        }
        if (this.open.bytes >= this.settings.segmentSize) await this.closeSegment();
        if (!r.batches.length || this.tailNext[db] > r.latest) break;
      }
    }
    // The deadline runs from the first batch's commit time (not from when the
    // tail saw it): archive_timeout bounds how long a write waits for its segment.
    const first = this.open.records[0];
    const since = first ? (first.timeUs ? first.timeUs / 1000 : this.open.firstAt) : 0;
    // Closing early by what sealing + archiving has been taking keeps the age
    // of the oldest unarchived write (the RPO) near archive_timeout, not above it.
    const budget = Math.max(this.settings.archiveTimeoutMs / 2, this.settings.archiveTimeoutMs - this.archiveLatencyMs);
    const due = this.open.records.length && (closing || Date.now() - since >= budget);
    if (due) await this.closeSegment();
  }

  private resetOpen(): void {
    this.open = { records: [], bytes: 0, firstAt: 0 };
  }

  /** Encode, write + fsync + rename into pending/, then advance state.json. */
  private async closeSegment(): Promise<void> {
    const s = this.state;
    const records = this.open.records;
    if (!records.length) return;
    const closedAt = Date.now();
    const { file, header, checksum } = await encodeSegment({
      timeline: s.timeline,
      segment: s.next_segment,
      dbFirstSeq: s.db_next_seq,
      consensusFirstSeq: s.consensus_next_seq,
      prevChecksum: s.prev_checksum,
      records,
    });
    const name = segmentName(s.timeline, s.next_segment);
    await writeFileAtomicAsync(path.join(walLayout(this.dataDir).pending, name), file, 0o600);
    s.next_segment++;
    s.db_next_seq = header.db.last + 1;
    s.consensus_next_seq = header.consensus.last + 1;
    s.prev_checksum = checksum;
    this.resetOpen();
    // Queued before state.json is written: the segment is durable in pending/
    // now, and a failed state write must not leave it out of the queue (after
    // a crash the start-up adopts it from pending/).
    this.pending.push({ name, bytes: file.length, kind: 'segment', timeline: header.timeline, segment: header.segment, firstTimeUs: header.firstTimeUs, lastTimeUs: header.lastTimeUs, closedAt });
    await this.saveState();
    this.log.debug('WAL segment closed', { segment: name, records: header.recordCount, bytes: file.length });
    this.updateGate();
    this.kickPush();
    await this.trimRocksdbArchive().catch((e) => this.log.warn('WAL: cannot delete archived RocksDB logs', { error: (e as Error).message }));
  }

  /**
   * Continuity is broken (a WAL file was lost, or the store is behind the
   * archive): close what we have, start a new timeline from where the log
   * continues, archive its history file, and say loudly that the archive
   * cannot bridge this: a new base backup is needed.
   */
  private async switchTimeline(db: WalDbName, gap: { expected: number; found: number }, latest: number): Promise<void> {
    const resume = gap.found > 0 ? gap.found : latest + 1;
    await this.newTimeline(db === 'db' ? { db: resume } : { consensus: resume }, {
      store: db,
      expected_seq: gap.expected,
      log_continues_at: gap.found || null,
      lost_sequences: gap.found > gap.expected ? gap.found - gap.expected : null,
    });
  }

  /** Starts timeline N+1 with its history file queued; resume = where tailing continues per store (others keep their place). */
  private async newTimeline(resume: { db?: number; consensus?: number }, why: Record<string, unknown>): Promise<void> {
    await this.closeSegment();
    const s = this.state;
    const from = s.timeline;
    // The next id nobody used: a restore may already have claimed from + 1 in the archive.
    let next = from + 1;
    if (this.config.wal.restore_command || this.config.wal.archive_dir) {
      const newest = await newestArchivedTimeline(this.dataDir, this.config, this.log);
      if (newest !== null) next = Math.max(next, newest + 1);
    }
    const history = {
      timeline: next,
      parent_timeline: from,
      branch: { segment: s.next_segment, db_seq: s.db_next_seq - 1, consensus_seq: s.consensus_next_seq - 1, prev_checksum: ZERO_CHECKSUM },
      reason: 'gap' as const,
      created: new Date().toISOString(),
    };
    const name = historyName(history.timeline);
    const bytes = encodeHistory(history);
    await writeFileAtomicAsync(path.join(walLayout(this.dataDir).pending, name), bytes, 0o600);
    s.timeline = history.timeline;
    s.prev_checksum = ZERO_CHECKSUM;
    if (resume.db !== undefined) s.db_next_seq = resume.db;
    if (resume.consensus !== undefined) s.consensus_next_seq = resume.consensus;
    this.tailNext = { db: s.db_next_seq, consensus: s.consensus_next_seq };
    s.timeline_switches_total++;
    s.needs_base_backup = true;
    await this.saveState();
    this.pending.push({ name, bytes: bytes.length, kind: 'history', timeline: history.timeline, segment: -1, firstTimeUs: 0, lastTimeUs: 0 });
    this.pending.sort(comparePending);
    this.log.error('WAL CONTINUITY BROKEN: new timeline started; the archive cannot restore across this point, take a new base backup now', {
      ...why,
      old_timeline: from,
      new_timeline: history.timeline,
    });
    this.kickPush();
  }

  /** db/archive/*.log that closed segments fully cover are ours to delete (RocksDB keeps them for us). */
  private async trimRocksdbArchive(): Promise<void> {
    const store = this.store();
    if (!store) return;
    for (const db of DBS) {
      const covered = db === 'db' ? this.state.db_next_seq : this.state.consensus_next_seq;
      const files = await native.walFiles(store.native, db);
      for (let i = 0; i < files.length; i++) {
        if (!files[i].archived) continue;
        // File i holds sequences [start_i, start of the next non-empty file):
        // covered once that start <= covered. An empty file (start 0) holds none.
        const next = files.slice(i + 1).find((f) => f.startSeq > 0);
        if (files[i].startSeq !== 0 && (!next || next.startSeq > covered)) continue;
        await fs.promises.rm(files[i].path, { force: true });
      }
    }
  }

  // ---- archive queue ----

  private kickPush(): void {
    if (this.pushing || this.stopped || !this.pending.length) return;
    this.pushing = this.pushLoop()
      .catch((e) => this.log.error('WAL archive loop failed', { error: (e as Error).message }))
      .finally(() => {
        this.pushing = null;
        if (this.pending.length && !this.stopped) setTimeout(() => this.kickPush(), Math.max(0, this.nextAttemptAt - Date.now())).unref();
      });
  }

  private async pushLoop(): Promise<void> {
    while (this.pending.length && (!this.stopped || this.draining)) {
      if (Date.now() < this.nextAttemptAt) return;
      const head = this.pending[0];
      const file = path.join(walLayout(this.dataDir).pending, head.name);
      let error: string | null = null;
      let thrown: unknown = null;
      try {
        error = await this.archiveOne(file);
      } catch (e) {
        thrown = e;
        error = (e as Error).message;
      }
      if (this.abort.signal.aborted && error) return; // aborted by shutdown: not a failure
      if (error && head.kind === 'history' && head.timeline === this.state.timeline && (await historyTaken(this.dataDir, this.config, head.name, file, thrown))) {
        // Another restore or node claimed this id while our history waited: nothing of it is archived yet (its history goes first).
        await this.serialized(async () => {
          if (this.pending[0] !== head || head.timeline !== this.state.timeline) return;
          this.pending = await renumberTimeline(this.dataDir, this.state, () => this.saveState(), this.pending, this.config, this.log);
        });
        this.updateGate();
        continue;
      }
      const now = new Date().toISOString();
      if (error) {
        this.state.archive_failures_total++;
        this.state.last_error = { message: error, at: now };
        this.backoffMs = this.backoffMs ? Math.min(BACKOFF_MAX_MS, this.backoffMs * 2) : BACKOFF_START_MS;
        this.nextAttemptAt = Date.now() + this.backoffMs;
        this.log.warn('WAL archive failed; retrying', { segment: head.name, error, retry_in_s: this.backoffMs / 1000, pending: this.pending.length, pending_bytes: this.pendingBytes });
        await this.saveState().catch(() => undefined);
        this.updateGate(); // the 503 reason names the error `wal status` shows
        return;
      }
      this.state.archived_segments_total += head.kind === 'segment' ? 1 : 0;
      this.state.last_archived = { name: head.name, last_commit_time: head.lastTimeUs ? new Date(head.lastTimeUs / 1000).toISOString() : null, archived_at: now };
      if (head.closedAt && !this.backoffMs) {
        const took = Date.now() - head.closedAt;
        this.archiveLatencyMs = this.archiveLatencyMs ? 0.7 * this.archiveLatencyMs + 0.3 * took : took;
      }
      if (this.backoffMs) this.log.info('WAL archiving recovered', { segment: head.name, after_failures: this.state.archive_failures_total });
      this.backoffMs = 0;
      this.nextAttemptAt = 0;
      await this.saveState();
      await fs.promises.rm(file, { force: true });
      this.pending.shift();
      this.updateGate();
      this.log.debug('WAL segment archived', { segment: head.name });
    }
    await fs.promises
      .open(walLayout(this.dataDir).pending, 'r')
      .then(async (h) => {
        await h.sync();
        await h.close();
      })
      .catch(() => undefined);
  }

  /** null = archived; else why not. The command's stderr goes to the node log. */
  private async archiveOne(file: string): Promise<string | null> {
    if (!this.settings.archiveCommand) {
      await this.sink!.push(file);
      return null;
    }
    const r = await runWalCommand(this.settings.archiveCommand, { p: file, f: path.basename(file) }, path.dirname(file), { timeoutMs: COMMAND_TIMEOUT_MS, signal: this.abort.signal });
    if (r.stderr) this.log[r.ok ? 'info' : 'warn']('archive_command stderr', { segment: path.basename(file), stderr: r.stderr });
    return r.ok ? null : describeWalCommandFailure(r);
  }

  private updateGate(): void {
    const bytes = this.pendingBytes;
    if (bytes > this.settings.maxPending) {
      const why = `WAL archive backlog: ${bytes} bytes in ${this.pending.length} segments not yet archived exceed wal.max_pending (${this.settings.maxPending}); last error: ${this.state.last_error?.message ?? 'none yet (the first attempt is still running)'}`;
      if (!this.gate.walBacklogReason) this.log.error('refusing writes: WAL archive backlog past wal.max_pending', { pending_bytes: bytes, max_pending: this.settings.maxPending });
      this.gate.setWalBacklog(why);
    } else if (this.gate.walBacklogReason) {
      this.gate.setWalBacklog(null);
      this.log.info('writes resumed: WAL archive backlog below wal.max_pending', { pending_bytes: bytes });
    }
  }

  // ---- helpers ----

  private requireStore(): GutsStore {
    const s = this.store();
    if (!s) throw new GutsError('GUTS_CLOSED', 'the store is not open');
    return s;
  }
}

/**
 * Runs tasks one after another. A failed task rejects its own promise only:
 * the queue never holds a rejected promise, which with no handler attached
 * yet is an unhandled rejection, and Node exits on one (a failed segment
 * close took the node down that way).
 */
class SerialQueue {
  private tail: Promise<void> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.tail.then(fn);
    this.tail = p.then(
      () => undefined,
      () => undefined,
    );
    return p;
  }

  /** Resolves once every task queued so far has settled. */
  idle(): Promise<void> {
    return this.tail;
  }
}
