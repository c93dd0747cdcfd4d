// Point-in-time restore: `backup restore FILE --wal [--until TIME |
// --until-seq N | --until-mark NAME] [--timeline N]`. The base is restored
// into staging exactly as a plain restore (src/restore.ts), then, still in
// staging, archived segments are fetched ahead, checked (src/wal/walk.ts) and
// their batches replayed in order onto the staged store until the target;
// the store then begins a new timeline (history file archived, wal/state.json
// for the node) and only then is it swapped in. Any failure before the swap
// removes the staging dir: the target is left as it was.
import * as fs from 'node:fs';
import * as path from 'node:path';

import type { Manifest } from '../archive';
import type { GutsConfig } from '../config';
import { GutsError } from '../errors';
import { fsyncDir, writeFileAtomic } from '../fsutil';
import { native, WalDbName } from '../native';
import { restoreBackup, RestoreOptions, RestoreReport, StagedCounts } from '../restore';
import { GutsStore } from '../store';
import { encodeHistory, historyName, readSegmentHeader, segmentName, WalRecord, ZERO_CHECKSUM } from './segment';
import { ensureWalDirs, newWalState, walLayout, writeWalState } from './state';
import { walSink, WalSink, walSource, WalSource } from './target';
import { HistoryReader, TimelineStep, WalPosition } from './timeline';
import { ArchiveWalker } from './walk';

export type RestoreTarget = { time_ms: number } | { seq: number } | { mark: string } | null;

export interface PitrOptions extends Omit<RestoreOptions, 'afterExtract'> {
  config: GutsConfig;
  /** overrides wal.archive_dir (and the commands) */
  archiveDir?: string;
  until: RestoreTarget;
  /** timeline to follow (default: latest) */
  timeline?: number | 'latest';
  /** segments fetched and decoded ahead (default 4) */
  prefetch?: number;
  /** SIGINT / SIGTERM: stop between segments (GUTS_CANCELLED, exit 130), running restore commands are killed */
  signal?: AbortSignal;
}

export interface WalReplayReport {
  archive: string;
  base: { timeline: number; segment: string; db_sequence: number; consensus_sequence: number };
  timelines_followed: number[];
  target: { kind: 'end' | 'time' | 'seq' | 'mark'; value: string | number | null };
  segments: number;
  wal_bytes: number;
  batches: number;
  /** last sequences and commit time actually restored: the real RPO */
  reached: { db_sequence: number; consensus_sequence: number; commit_time: string | null; segment: string | null };
  /** where the archive ended (replay to the end), else null */
  end_of_archive: string | null;
  /** fetching, checking and applying the segments, and flushing the store they were written to (the replay rate's denominator) */
  replay_seconds: number;
  /** time walApply ran writing the batches, on a worker while the next segments are fetched and checked */
  apply_seconds: number;
  /** of replay_seconds, flushing the staged store's memtables to disk at the end */
  flush_seconds: number;
  /** CPU time (user + system, every thread of the process) the replay used: its cost on a shared machine */
  replay_cpu_seconds: number;
  /** after the replay: counts, close, the new timeline's history probed, written and archived */
  finish_seconds: number;
  new_timeline: { timeline: number; history: string; first_segment: string; history_archived: boolean; archive_error?: string };
  /** things the operator must know although the restore succeeded (also printed on stderr as `warning: …`) */
  warnings: string[];
}

export interface PitrReport extends RestoreReport {
  wal: WalReplayReport;
}

// Batches handed to one walApply: small enough that the next segments are
// checked on the JS thread while the previous write runs on a worker.
const APPLY_BATCHES = 1024;
const APPLY_BYTES = 16 << 20;

/** MANIFEST.json `wal` (written by backup create): where the base sits in the WAL history. */
export function manifestWalPosition(manifest: Manifest, file: string): WalPosition {
  const w = (manifest as unknown as { wal?: Record<string, unknown> }).wal;
  const ok = w && [w.timeline, w.segment, w.db_seq, w.consensus_seq].every((v) => Number.isSafeInteger(v) && (v as number) >= 0) && (w.timeline as number) >= 1;
  if (!ok) throw new GutsError('GUTS_INVALID_ARGUMENT', `${file} records no WAL position (MANIFEST.json "wal"): it was made before WAL archiving; restore it without --wal`, file);
  return { timeline: w.timeline as number, segment: w.segment as number, db_seq: w.db_seq as number, consensus_seq: w.consensus_seq as number };
}

/** The local directory behind an archive spec (a plain path or file://), null for other schemes. */
export function localArchiveDir(spec: string): string | null {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(spec);
  if (m) return m[1].toLowerCase() === 'file' ? path.resolve(decodeURIComponent(spec.slice('file://'.length))) : null;
  return spec ? path.resolve(spec) : null;
}

/** A restore reads an archive that exists: a missing directory is a mistake (a typo, an unmounted disk), never created. */
function checkArchiveDirExists(spec: string, what: string): void {
  const dir = localArchiveDir(spec);
  if (dir === null) return;
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch {
    throw new GutsError('GUTS_NOT_FOUND', `WAL archive ${dir} (${what}) does not exist`, dir);
  }
  if (!st.isDirectory()) throw new GutsError('GUTS_NOT_FOUND', `WAL archive ${dir} (${what}) is not a directory`, dir);
}

/** Parses --until: ISO-8601 (a time without a zone is UTC) or a Unix time in seconds; impossible dates (Feb 30, 25:00) are refused. */
export function parseUntilTime(s: string): number {
  const v = s.trim();
  const bad = () => new GutsError('GUTS_INVALID_ARGUMENT', `--until ${JSON.stringify(s)}: not a time (use ISO-8601 such as 2026-01-31T12:00:00Z, or Unix seconds)`);
  const f = /^(\d{4})-(\d\d)-(\d\d)(?:[T ](\d\d):(\d\d)(?::(\d\d))?)?/.exec(v);
  if (f) {
    const [y, mo, d] = [Number(f[1]), Number(f[2]), Number(f[3])];
    const days = new Date(Date.UTC(y, mo, 0)).getUTCDate();
    if (mo < 1 || mo > 12 || d < 1 || d > days) throw bad();
    if (f[4] !== undefined && (Number(f[4]) > 23 || Number(f[5]) > 59 || (f[6] !== undefined && Number(f[6]) > 59))) throw bad();
  }
  let ms: number;
  if (/^\d+(\.\d+)?$/.test(v)) ms = Math.round(Number(v) * 1000);
  else if (/^\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?$/.test(v)) ms = Date.parse(v.replace(' ', 'T') + 'Z');
  else ms = /^\d{4}-\d\d-\d\d([T ]|$)/.test(v) ? Date.parse(v.replace(' ', 'T')) : NaN;
  if (!Number.isFinite(ms)) throw bad();
  return ms;
}

function iso(timeUs: number): string | null {
  return timeUs > 0 ? new Date(Math.floor(timeUs / 1000)).toISOString() : null;
}

/** Decides, record by record in commit order, where the replay stops. */
class TargetTracker {
  reached = false;
  constructor(private readonly until: RestoreTarget) {}

  /** 'apply' the record, or 'stop' before it (it is past the target). After an applied record, `reached` may be set: stop then. */
  decide(r: WalRecord): 'apply' | 'stop' {
    const u = this.until;
    if (!u) return 'apply';
    if ('time_ms' in u) {
      if (r.timeUs > 0 && r.timeUs > u.time_ms * 1000) {
        this.reached = true;
        return 'stop';
      }
      return 'apply';
    }
    if ('seq' in u) {
      if (r.db !== 'db') return 'apply';
      if (r.seq > u.seq) {
        this.reached = true;
        return 'stop';
      }
      if (r.seq + r.count - 1 >= u.seq) this.reached = true; // this batch holds the target sequence: the last one
      return 'apply';
    }
    if (r.mark === u.mark) this.reached = true; // up to and including the mark's batch
    return 'apply';
  }
}

/**
 * Batches queued per store, written with walApply a thousand at a time. One
 * write runs on a worker while the JS thread checks the next segments: a new
 * write starts once the previous one has finished, in order.
 */
class Replayer {
  private queued: Record<WalDbName, Buffer[]> = { db: [], consensus: [] };
  private queuedBytes = 0;
  private running: Promise<void> | null = null;
  applied = 0;
  /** time walApply ran (on a worker, overlapping the fetches and checks) */
  applySeconds = 0;
  constructor(private readonly store: GutsStore) {}

  async add(r: WalRecord): Promise<void> {
    this.queued[r.db].push(r.data);
    this.queuedBytes += r.data.length;
    if (this.queued[r.db].length >= APPLY_BATCHES || this.queuedBytes >= APPLY_BYTES) await this.start();
  }

  /** Waits for the running write (its error surfaces here), then starts one for what is queued. */
  private async start(): Promise<void> {
    if (this.running) await this.running;
    this.running = null;
    const queued = this.queued;
    this.queued = { db: [], consensus: [] };
    this.queuedBytes = 0;
    if (!queued.db.length && !queued.consensus.length) return;
    const p = this.write(queued);
    p.catch(() => undefined); // awaited by the next start() or flush()
    this.running = p;
  }

  private async write(queued: Record<WalDbName, Buffer[]>): Promise<void> {
    for (const db of ['db', 'consensus'] as const) {
      const batches = queued[db];
      if (!batches.length) continue;
      const t0 = process.hrtime.bigint();
      const r = await native.walApply(this.store.native, db, batches);
      this.applySeconds += Number(process.hrtime.bigint() - t0) / 1e9;
      this.applied += r.applied;
      if (r.applied !== batches.length) throw new GutsError('GUTS_INTERNAL', `walApply on ${db} applied ${r.applied} of ${batches.length} archived batches`);
    }
  }

  /** Everything queued written. */
  async flush(): Promise<void> {
    await this.start();
    if (this.running) await this.running;
    this.running = null;
  }

  /** Waits for a running write without starting another (error paths: the store closes after it). */
  async settle(): Promise<void> {
    if (this.running) await this.running.catch(() => undefined);
    this.running = null;
  }
}

interface NewTimeline {
  timeline: number;
  parent: number;
  branchSegment: number;
  prevChecksum: string;
}

/** Whether the archive holds other bytes than `file` under `name` (false when it holds none or cannot be read). */
async function differentInArchive(source: WalSource, tmpDir: string, name: string, file: string): Promise<boolean> {
  const dest = path.join(tmpDir, `${name}.probe`);
  try {
    return (await source.fetch(name, dest)) && !fs.readFileSync(dest).equals(fs.readFileSync(file));
  } catch {
    return false;
  } finally {
    fs.rmSync(dest, { force: true });
  }
}

/** The checksum of the segment before `segment` on `timeline` (ZERO when it is not archived). */
async function checksumBefore(source: WalSource, tmpDir: string, timeline: number, segment: number): Promise<string> {
  if (segment === 0) return ZERO_CHECKSUM;
  const name = segmentName(timeline, segment - 1);
  const dest = path.join(tmpDir, name);
  if (!(await source.fetch(name, dest))) return ZERO_CHECKSUM;
  try {
    return readSegmentHeader(fs.readFileSync(dest), name).checksum;
  } finally {
    fs.rmSync(dest, { force: true });
  }
}

/** The node's WAL state for a restored store: it archives on the new timeline from the branch point. */
function writeRestoredState(staging: string, nt: NewTimeline, seqs: { db: number; consensus: number }): void {
  ensureWalDirs(staging);
  // A base on the parent timeline plus the history file restores this timeline: no new base is needed.
  writeWalState(staging, { ...newWalState(seqs.db + 1, seqs.consensus + 1), timeline: nt.timeline, next_segment: nt.branchSegment, prev_checksum: nt.prevChecksum, needs_base_backup: false });
  fsyncDir(walLayout(staging).dir);
  fsyncDir(staging);
}

interface ReplayContext {
  opts: PitrOptions;
  source: WalSource;
  sink: WalSink | null;
  /** the built-in sink's location (never created by a restore), null for wal.archive_command */
  sinkDir: string | null;
  staging: string;
  base: WalPosition;
  tmpDir: string;
  histories: HistoryReader;
  steps: TimelineStep[];
  /** collected before the replay (timelines left behind); more are added here */
  warnings: string[];
}

function describeTarget(u: RestoreTarget): string {
  if (!u) return 'the end of the archive';
  if ('time_ms' in u) return `--until ${new Date(u.time_ms).toISOString()}`;
  return 'seq' in u ? `--until-seq ${u.seq}` : `--until-mark ${u.mark}`;
}

/** Replays onto the staged store (open), starts the new timeline; returns the report and the counts. */
async function replayOnto(store: GutsStore, ctx: ReplayContext): Promise<{ report: WalReplayReport; counts: StagedCounts }> {
  const t0 = Date.now();
  const cpu0 = process.cpuUsage();
  const { opts, source, base, steps, tmpDir, histories, staging } = ctx;
  const u = opts.until;
  const walker = new ArchiveWalker({ source, tmpDir, steps, base, prefetch: opts.prefetch });
  const target = new TargetTracker(u);
  const replayer = new Replayer(store);
  const reached = { db: base.db_seq, consensus: base.consensus_seq, timeUs: 0 };
  let lastName: string | null = null;
  let stopIn: { timeline: number; segment: number; checksum: string } | null = null;
  const cancelled = () => new GutsError('GUTS_CANCELLED', `point-in-time restore interrupted after ${walker.segments} WAL segments; the target is untouched`);
  try {
    outer: for (;;) {
      if (opts.signal?.aborted) throw cancelled();
      const w = await walker.next().catch((e: unknown) => {
        throw opts.signal?.aborted ? cancelled() : e;
      });
      if (!w) break;
      lastName = w.name;
      stopIn = { timeline: w.segment.timeline, segment: w.segment.segment, checksum: w.segment.checksum };
      for (const r of w.records) {
        if (target.decide(r) === 'stop') break outer;
        await replayer.add(r);
        if (r.db === 'db') reached.db = r.seq + r.count - 1;
        else reached.consensus = r.seq + r.count - 1;
        reached.timeUs = Math.max(reached.timeUs, r.timeUs);
        if (target.reached) break outer;
      }
    }
    await replayer.flush();
  } finally {
    await replayer.settle();
    await walker.close();
  }
  // A target inside the base cannot be restored exactly from it (the base's own
  // archived batches, skipped above, tell).
  if (u && 'time_ms' in u && walker.inBase.lastTimeUs > u.time_ms * 1000) {
    throw new GutsError('GUTS_INVALID_ARGUMENT', `--until ${new Date(u.time_ms).toISOString()} is before the base backup's last write (${iso(walker.inBase.lastTimeUs)}): use an older base`);
  }
  if (u && 'mark' in u && !target.reached && walker.inBase.marks.has(u.mark)) {
    throw new GutsError('GUTS_INVALID_ARGUMENT', `restore point ${u.mark} is already in the base backup: use an older base, or restore without --wal`);
  }
  if (u && !target.reached) {
    throw new GutsError(
      'GUTS_WAL_TARGET',
      `the WAL archive ${source.describe} ends at ${walker.endName ?? lastName ?? segmentName(base.timeline, base.segment)} (db sequence ${reached.db}, last commit ${iso(reached.timeUs) ?? 'none after the base'}) before ${describeTarget(u)} was reached; nothing was restored`,
    );
  }
  // The staging store was written without a WAL (a replay store): its
  // memtables reach disk now, before anything reads it or it is swapped in.
  const tFlush = process.hrtime.bigint();
  await store.native.flush();
  const flushSeconds = Number(process.hrtime.bigint() - tFlush) / 1e9;
  const replaySeconds = (Date.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const c = await store.counts();
  await store.close();

  // The restored store continues on a new timeline from where the replay stopped.
  const nt: NewTimeline = {
    timeline: await histories.nextTimeline(Math.max(...steps.map((s) => s.timeline)) + 1),
    parent: stopIn?.timeline ?? steps[0].timeline,
    branchSegment: stopIn ? stopIn.segment + 1 : base.segment,
    prevChecksum: stopIn ? stopIn.checksum : await checksumBefore(source, tmpDir, base.timeline, base.segment),
  };
  const warnings = [...ctx.warnings];
  if (walker.segments === 0 && nt.prevChecksum === ZERO_CHECKSUM) {
    // Nothing at, after or just before the base: most likely the wrong archive (or one pruned past the base), not an idle node.
    warnings.push(
      `the WAL archive ${source.describe} holds no segment for this base (neither ${segmentName(base.timeline, base.segment)}, which the base names, nor any later one, nor the one before it): ` +
        `only the base backup was restored; check --archive-dir / wal.archive_dir`,
    );
  }
  // The timeline id is claimed in the archive before anything uses it: the
  // history file is pushed first under the archive's no-overwrite rule, so of
  // restores racing for one id exactly one wins; the others are told
  // GUTS_EXISTS and take the next id. (The store's state.json follows the
  // claimed id.) If the archive cannot be reached, the history stays in
  // wal/pending/ for the node's archiver, as PostgreSQL does at the end of recovery.
  ensureWalDirs(staging);
  let hName = historyName(nt.timeline);
  let historyFile = path.join(staging, 'wal', 'pending', hName);
  let archiveError: string | undefined;
  for (let attempt = 0; ; attempt++) {
    hName = historyName(nt.timeline);
    historyFile = path.join(staging, 'wal', 'pending', hName);
    writeFileAtomic(
      historyFile,
      encodeHistory({
        timeline: nt.timeline,
        parent_timeline: nt.parent,
        branch: { segment: nt.branchSegment, db_seq: reached.db, consensus_seq: reached.consensus, prev_checksum: nt.prevChecksum },
        reason: 'restore',
        created: new Date().toISOString(),
      }),
      0o600,
    );
    try {
      if (!ctx.sink) throw new GutsError('GUTS_INVALID_CONFIG', 'neither wal.archive_command nor wal.archive_dir is set');
      if (ctx.sinkDir !== null) checkArchiveDirExists(ctx.sinkDir, opts.archiveDir !== undefined ? '--archive-dir' : 'wal.archive_dir');
      await ctx.sink.push(historyFile);
      fs.rmSync(historyFile);
      fsyncDir(path.dirname(historyFile));
    } catch (e) {
      // wal.archive_command only says it failed: the archive (read as the replay did) tells whether another history holds the name
      const taken = (e as GutsError).code === 'GUTS_EXISTS' || (ctx.sinkDir === null && (await differentInArchive(source, tmpDir, hName, historyFile)));
      if (taken && attempt < 64) {
        // another restore claimed this id a moment ago
        fs.rmSync(historyFile, { force: true });
        opts.log?.(`note: timeline ${nt.timeline} was just claimed in the archive by another restore; taking the next id`);
        nt.timeline = Math.max(nt.timeline + 1, await histories.nextTimeline(nt.timeline + 1));
        continue;
      }
      archiveError = (e as Error).message;
      opts.log?.(`warning: could not archive ${hName} (${archiveError}); it is left in ${path.join(opts.target, 'wal', 'pending')} for the node's archiver`);
    }
    break;
  }
  writeRestoredState(staging, nt, reached);
  for (const w of warnings) opts.log?.(`warning: ${w}`);
  opts.log?.(
    `replayed ${replayer.applied} batches from ${walker.segments} WAL segments to ${describeTarget(u)}: db sequence ${reached.db}, consensus ${reached.consensus}, last commit ${iso(reached.timeUs) ?? '(none after the base)'}; new timeline ${nt.timeline}`,
  );
  const report: WalReplayReport = {
    archive: source.describe,
    base: { timeline: base.timeline, segment: segmentName(base.timeline, base.segment), db_sequence: base.db_seq, consensus_sequence: base.consensus_seq },
    timelines_followed: [...new Set(steps.map((s) => s.timeline))],
    target: !u ? { kind: 'end', value: null } : 'time_ms' in u ? { kind: 'time', value: new Date(u.time_ms).toISOString() } : 'seq' in u ? { kind: 'seq', value: u.seq } : { kind: 'mark', value: u.mark },
    segments: walker.segments,
    wal_bytes: walker.bytes,
    batches: replayer.applied,
    reached: { db_sequence: reached.db, consensus_sequence: reached.consensus, commit_time: iso(reached.timeUs), segment: lastName },
    end_of_archive: walker.endName,
    replay_seconds: replaySeconds,
    apply_seconds: replayer.applySeconds,
    flush_seconds: flushSeconds,
    replay_cpu_seconds: (cpu.user + cpu.system) / 1e6,
    finish_seconds: (Date.now() - t0) / 1000 - replaySeconds,
    new_timeline: {
      timeline: nt.timeline,
      history: hName,
      first_segment: segmentName(nt.timeline, nt.branchSegment),
      history_archived: archiveError === undefined,
      ...(archiveError !== undefined ? { archive_error: archiveError } : {}),
    },
    warnings,
  };
  return { report, counts: { objects: { commit: c.commit, tree: c.tree, blob: c.blob, tag: c.tag }, repositories: c.repositories } };
}

export async function restorePointInTime(opts: PitrOptions): Promise<PitrReport> {
  const w = opts.config.wal;
  if (opts.archiveDir !== undefined) checkArchiveDirExists(opts.archiveDir, '--archive-dir');
  else if (!w.restore_command) checkArchiveDirExists(w.archive_dir, 'wal.archive_dir');
  const source = walSource(opts.config, { archiveDir: opts.archiveDir, commandOptions: { signal: opts.signal } });
  // No archive configured to push to (only a restore_command): the history waits in wal/pending/ for the node.
  const sink = opts.archiveDir !== undefined || w.archive_command || w.archive_dir ? walSink(opts.config, { archiveDir: opts.archiveDir }) : null;
  const sinkDir = !sink ? null : opts.archiveDir !== undefined ? opts.archiveDir : w.archive_command ? null : w.archive_dir;
  let wal: WalReplayReport | undefined;
  const afterExtract = async (staging: string, manifest: Manifest): Promise<StagedCounts> => {
    if (manifest.kind === 'consensus-only') throw new GutsError('GUTS_INVALID_ARGUMENT', `${opts.file} is a consensus-only backup: a WAL replay needs a full base`, opts.file);
    const base = manifestWalPosition(manifest, opts.file);
    const u = opts.until;
    const created = Date.parse(manifest.created);
    if (u && 'time_ms' in u && Number.isFinite(created) && u.time_ms < created) {
      throw new GutsError(
        'GUTS_INVALID_ARGUMENT',
        `--until ${new Date(u.time_ms).toISOString()} is not after the base backup (created ${new Date(created).toISOString()}): use an older base, or restore without --wal`,
      );
    }
    if (u && 'seq' in u && u.seq <= base.db_seq) {
      throw new GutsError('GUTS_INVALID_ARGUMENT', `--until-seq ${u.seq} is not after the base backup (db sequence ${base.db_seq}): use an older base, or restore without --wal`);
    }
    const tmpDir = path.join(staging, '.wal-fetch');
    fs.mkdirSync(tmpDir, { mode: 0o700 });
    const histories = new HistoryReader(source, tmpDir);
    const exists = async (name: string) => {
      const ok = await source.fetch(name, path.join(tmpDir, name));
      fs.rmSync(path.join(tmpDir, name), { force: true });
      return ok;
    };
    if (u && 'time_ms' in u && base.segment > 1) {
      // The segment before the base's holds only batches the base contains: its last commit time is the base's (or older).
      const before = segmentName(base.timeline, base.segment - 1);
      const dest = path.join(tmpDir, before);
      if (await source.fetch(before, dest)) {
        let lastUs = 0;
        try {
          lastUs = readSegmentHeader(fs.readFileSync(dest), before).lastTimeUs;
        } finally {
          fs.rmSync(dest, { force: true });
        }
        if (lastUs > u.time_ms * 1000) {
          throw new GutsError(
            'GUTS_INVALID_ARGUMENT',
            `--until ${new Date(u.time_ms).toISOString()} is not after the base backup (its last write, archived in ${before}, is at ${iso(lastUs)}): use an older base, or restore without --wal`,
          );
        }
      }
    }
    const steps = await histories.resolvePath(base, opts.timeline ?? 'latest', exists, (tl, why) => opts.log?.(`note: not following timeline ${tl}: ${why}`));
    const warnings: string[] = [];
    if ((opts.timeline ?? 'latest') === 'latest') {
      // `latest` follows the newest branch; a parent that went on writing after it is left behind: say so.
      for (const step of steps) {
        if (!step.child) continue;
        const after = segmentName(step.timeline, step.endSegment);
        if (await exists(after)) {
          warnings.push(
            `following timeline ${step.child.timeline} (the latest), which branched off timeline ${step.timeline} after segment ${segmentName(step.timeline, step.endSegment - 1)} (db sequence ${step.child.branch.db_seq}); ` +
              `timeline ${step.timeline} continues after that (${after} is archived) and its later commits are NOT restored: give --timeline ${step.timeline} to follow it`,
          );
        }
      }
    }
    // a replay store: archived batches written without a WAL, flushed before it is used (crash: staging is discarded)
    const store = await GutsStore.open(staging, { replay: true });
    try {
      const r = await replayOnto(store, { opts, source, sink, sinkDir, staging, base, tmpDir, histories, steps, warnings });
      wal = r.report;
      return r.counts;
    } finally {
      if (store.native.isOpen()) await store.close();
      fs.rmSync(tmpDir, { recursive: true, force: true });
      fsyncDir(staging);
    }
  };
  // Killed restore commands fail as I/O errors: once interrupted, they are the interruption.
  const interruptible = (staging: string, manifest: Manifest) =>
    afterExtract(staging, manifest).catch((e: unknown) => {
      if (opts.signal?.aborted && (e as GutsError).code !== 'GUTS_CANCELLED') throw new GutsError('GUTS_CANCELLED', 'point-in-time restore interrupted; the target is untouched');
      throw e;
    });
  const report = await restoreBackup({ ...opts, afterExtract: interruptible });
  return { ...report, wal: wal! };
}
