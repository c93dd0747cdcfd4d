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
  replay_seconds: number;
  new_timeline: { timeline: number; history: string; first_segment: string; history_archived: boolean; archive_error?: string };
}

export interface PitrReport extends RestoreReport {
  wal: WalReplayReport;
}

const APPLY_BATCHES = 4096;
const APPLY_BYTES = 64 << 20;

/** MANIFEST.json `wal` (written by backup create): where the base sits in the WAL history. */
export function manifestWalPosition(manifest: Manifest, file: string): WalPosition {
  const w = (manifest as unknown as { wal?: Record<string, unknown> }).wal;
  const ok = w && [w.timeline, w.segment, w.db_seq, w.consensus_seq].every((v) => Number.isSafeInteger(v) && (v as number) >= 0) && (w.timeline as number) >= 1;
  if (!ok) throw new GutsError('GUTS_INVALID_ARGUMENT', `${file} records no WAL position (MANIFEST.json "wal"): it was made before WAL archiving; restore it without --wal`, file);
  return { timeline: w.timeline as number, segment: w.segment as number, db_seq: w.db_seq as number, consensus_seq: w.consensus_seq as number };
}

/** Parses --until: ISO-8601 (a time without a zone is UTC) or a Unix time in seconds. */
export function parseUntilTime(s: string): number {
  const v = s.trim();
  let ms: number;
  if (/^\d+(\.\d+)?$/.test(v)) ms = Math.round(Number(v) * 1000);
  else if (/^\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?$/.test(v)) ms = Date.parse(v.replace(' ', 'T') + 'Z');
  else ms = /^\d{4}-\d\d-\d\d([T ]|$)/.test(v) ? Date.parse(v.replace(' ', 'T')) : NaN;
  if (!Number.isFinite(ms)) throw new GutsError('GUTS_INVALID_ARGUMENT', `--until ${JSON.stringify(s)}: not a time (use ISO-8601 such as 2026-01-31T12:00:00Z, or Unix seconds)`);
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

/** Batches queued per store, written with walApply thousands at a time. */
class Replayer {
  private readonly queued: Record<WalDbName, Buffer[]> = { db: [], consensus: [] };
  private queuedBytes = 0;
  applied = 0;
  constructor(private readonly store: GutsStore) {}

  async add(r: WalRecord): Promise<void> {
    this.queued[r.db].push(r.data);
    this.queuedBytes += r.data.length;
    if (this.queued[r.db].length >= APPLY_BATCHES || this.queuedBytes >= APPLY_BYTES) await this.flush();
  }

  async flush(): Promise<void> {
    for (const db of ['db', 'consensus'] as const) {
      const batches = this.queued[db];
      if (!batches.length) continue;
      this.queued[db] = [];
      const r = await native.walApply(this.store.native, db, batches);
      this.applied += r.applied;
      if (r.applied !== batches.length) throw new GutsError('GUTS_INTERNAL', `walApply on ${db} applied ${r.applied} of ${batches.length} archived batches`);
    }
    this.queuedBytes = 0;
  }
}

interface NewTimeline {
  timeline: number;
  parent: number;
  branchSegment: number;
  prevChecksum: string;
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
  const walDir = path.join(staging, 'wal');
  fs.mkdirSync(path.join(walDir, 'pending'), { recursive: true, mode: 0o700 });
  // docs/FORMAT.md "Archiver state": the open segment of the new timeline starts at the branch point.
  const state = {
    format: 'guts-wal-state',
    format_version: 1,
    timeline: nt.timeline,
    next_segment: nt.branchSegment,
    db_next_seq: seqs.db + 1,
    consensus_next_seq: seqs.consensus + 1,
    prev_checksum: nt.prevChecksum,
    last_archived: null,
    archived_segments_total: 0,
    archive_failures_total: 0,
    last_error: null,
    timeline_switches_total: 0,
    needs_base_backup: false,
  };
  writeFileAtomic(path.join(walDir, 'state.json'), JSON.stringify(state, null, 2) + '\n', 0o600);
  fsyncDir(walDir);
  fsyncDir(staging);
}

interface ReplayContext {
  opts: PitrOptions;
  source: WalSource;
  sink: WalSink;
  staging: string;
  base: WalPosition;
  tmpDir: string;
  histories: HistoryReader;
  steps: TimelineStep[];
}

function describeTarget(u: RestoreTarget): string {
  if (!u) return 'the end of the archive';
  if ('time_ms' in u) return `--until ${new Date(u.time_ms).toISOString()}`;
  return 'seq' in u ? `--until-seq ${u.seq}` : `--until-mark ${u.mark}`;
}

/** Replays onto the staged store (open), starts the new timeline; returns the report and the counts. */
async function replayOnto(store: GutsStore, ctx: ReplayContext): Promise<{ report: WalReplayReport; counts: StagedCounts }> {
  const t0 = Date.now();
  const { opts, source, base, steps, tmpDir, histories, staging } = ctx;
  const u = opts.until;
  const walker = new ArchiveWalker({ source, tmpDir, steps, base, prefetch: opts.prefetch });
  const target = new TargetTracker(u);
  const replayer = new Replayer(store);
  const reached = { db: base.db_seq, consensus: base.consensus_seq, timeUs: 0 };
  let lastName: string | null = null;
  let stopIn: { timeline: number; segment: number; checksum: string } | null = null;
  try {
    outer: for (;;) {
      const w = await walker.next();
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
    await walker.close();
  }
  if (u && !target.reached) {
    throw new GutsError(
      'GUTS_WAL_TARGET',
      `the WAL archive ${source.describe} ends at ${walker.endName ?? lastName ?? segmentName(base.timeline, base.segment)} (db sequence ${reached.db}, last commit ${iso(reached.timeUs) ?? 'none after the base'}) before ${describeTarget(u)} was reached; nothing was restored`,
    );
  }
  const c = await store.counts();
  await store.close();

  // The restored store continues on a new timeline from where the replay stopped.
  const nt: NewTimeline = {
    timeline: await histories.nextTimeline(Math.max(...steps.map((s) => s.timeline)) + 1),
    parent: stopIn?.timeline ?? steps[0].timeline,
    branchSegment: stopIn ? stopIn.segment + 1 : base.segment,
    prevChecksum: stopIn ? stopIn.checksum : await checksumBefore(source, tmpDir, base.timeline, base.segment),
  };
  const hName = historyName(nt.timeline);
  const historyFile = path.join(staging, 'wal', 'pending', hName);
  writeRestoredState(staging, nt, reached);
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
  // Archived before the swap, as PostgreSQL does at the end of recovery; if
  // the archive refuses it, it stays in wal/pending/ for the node's archiver.
  let archiveError: string | undefined;
  try {
    await ctx.sink.push(historyFile);
    fs.rmSync(historyFile);
    fsyncDir(path.dirname(historyFile));
  } catch (e) {
    archiveError = (e as Error).message;
    opts.log?.(`warning: could not archive ${hName} (${archiveError}); it is left in ${path.join(opts.target, 'wal', 'pending')} for the node's archiver`);
  }
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
    replay_seconds: (Date.now() - t0) / 1000,
    new_timeline: {
      timeline: nt.timeline,
      history: hName,
      first_segment: segmentName(nt.timeline, nt.branchSegment),
      history_archived: archiveError === undefined,
      ...(archiveError !== undefined ? { archive_error: archiveError } : {}),
    },
  };
  return { report, counts: { objects: { commit: c.commit, tree: c.tree, blob: c.blob, tag: c.tag }, repositories: c.repositories } };
}

export async function restorePointInTime(opts: PitrOptions): Promise<PitrReport> {
  const source = walSource(opts.config, { archiveDir: opts.archiveDir });
  const sink = walSink(opts.config, { archiveDir: opts.archiveDir });
  let wal: WalReplayReport | undefined;
  const afterExtract = async (staging: string, manifest: Manifest): Promise<StagedCounts> => {
    if (manifest.kind === 'consensus-only') throw new GutsError('GUTS_INVALID_ARGUMENT', `${opts.file} is a consensus-only backup: a WAL replay needs a full base`, opts.file);
    const base = manifestWalPosition(manifest, opts.file);
    const u = opts.until;
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
    const steps = await histories.resolvePath(base, opts.timeline ?? 'latest', exists);
    const store = await GutsStore.open(staging);
    try {
      const r = await replayOnto(store, { opts, source, sink, staging, base, tmpDir, histories, steps });
      wal = r.report;
      return r.counts;
    } finally {
      if (store.native.isOpen()) await store.close();
      fs.rmSync(tmpDir, { recursive: true, force: true });
      fsyncDir(staging);
    }
  };
  const report = await restoreBackup({ ...opts, afterExtract });
  return { ...report, wal: wal! };
}
