// `guts-node wal verify [--from BACKUP]`: walks the WAL archive in replay
// order from a base backup's position (or, without one, from the first
// segment of the latest timeline) to its end, with the same checks as a
// point-in-time restore (src/wal/walk.ts): every segment present, intact and
// chained. Throws GUTS_WAL_GAP / GUTS_CORRUPT naming the first problem.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { checkArchive, KEY_ENTRY, CONFIG_ENTRY, readArchive, statArchive } from '../archive';
import type { GutsConfig } from '../config';
import { GutsError } from '../errors';
import { manifestWalPosition } from './pitr';
import { historyName, parseSegmentName, readSegmentHeader, Segment, segmentName } from './segment';
import { walSource } from './target';
import { HistoryReader, TimelineStep, WalPosition } from './timeline';
import { ArchiveWalker } from './walk';

export interface WalVerifyOptions {
  config: GutsConfig;
  archiveDir?: string;
  /** a base backup: start at its WAL position */
  from?: string;
  timeline?: number | 'latest';
  prefetch?: number;
}

export interface WalVerifyReport {
  archive: string;
  from: { backup: string | null; timeline: number; segment: string; db_sequence: number; consensus_sequence: number };
  timelines: number[];
  segments: number;
  wal_bytes: number;
  /** batches newer than the starting point */
  batches: number;
  marks: string[];
  first_segment: string | null;
  last_segment: string | null;
  /** the first name not archived: where the archive ends */
  end_of_archive: string | null;
  db_sequence: { first: number; last: number } | null;
  consensus_sequence: { first: number; last: number } | null;
  commit_time: { first: string; last: string } | null;
  elapsed_seconds: number;
}

/** The WAL position recorded in a backup's manifest (the archive is read and checked whole). */
async function backupPosition(file: string): Promise<WalPosition> {
  const abs = path.resolve(file);
  statArchive(abs);
  const r = await readArchive({ path: abs, inMemory: [KEY_ENTRY, CONFIG_ENTRY] });
  const { manifest, problems } = checkArchive(r);
  if (!manifest || problems.length) throw new GutsError('GUTS_CORRUPT', `${abs}: ${problems[0]?.message ?? 'no usable MANIFEST.json'}`, abs);
  return manifestWalPosition(manifest, abs);
}

/** Without a base: the first segment of the latest timeline the location lists. */
async function latestTimelineStart(source: ReturnType<typeof walSource>, tmpDir: string): Promise<WalPosition> {
  if (!source.list) throw new GutsError('GUTS_INVALID_ARGUMENT', `${source.describe} cannot be listed: give --from BACKUP (or --archive-dir)`);
  const segs = (await source.list()).map(parseSegmentName).filter((p): p is { timeline: number; segment: number } => p !== null);
  if (!segs.length) throw new GutsError('GUTS_NOT_FOUND', `no WAL segments in ${source.describe}`);
  const timeline = Math.max(...segs.map((s) => s.timeline));
  const segment = Math.min(...segs.filter((s) => s.timeline === timeline).map((s) => s.segment));
  const name = segmentName(timeline, segment);
  const dest = path.join(tmpDir, name);
  if (!(await source.fetch(name, dest))) throw new GutsError('GUTS_NOT_FOUND', `${name} vanished from ${source.describe}`);
  try {
    const h = readSegmentHeader(fs.readFileSync(dest), name);
    return { timeline, segment, db_seq: h.db.first - 1, consensus_seq: h.consensus.first - 1 };
  } finally {
    fs.rmSync(dest, { force: true });
  }
}

/**
 * A history file naming the walked timeline as its parent proves that
 * timeline reached the segment before the branch point: an archive that ends
 * earlier lost segments (a gap), even when nothing after them is left to see.
 */
async function checkHistoryEvidence(histories: HistoryReader, steps: TimelineStep[], base: WalPosition, last: Segment | null, where: string): Promise<void> {
  const tl = steps[steps.length - 1].timeline;
  const firstOnTl = steps.length === 1 ? base.segment : steps[steps.length - 2].endSegment;
  const reached = last && last.timeline === tl ? last.segment : firstOnTl - 1;
  for (const child of await histories.descendantsCandidates(tl)) {
    const h = await histories.get(child);
    if (!h || h.parent_timeline !== tl) continue;
    const must = h.branch.segment - 1;
    if (must > reached) {
      const missing = segmentName(tl, reached + 1);
      throw new GutsError(
        'GUTS_WAL_GAP',
        `WAL segment ${missing} is missing from ${where}: ${historyName(child)} says timeline ${tl} reached segment ${segmentName(tl, must)} (timeline ${child} branched off after it), but the archive ends at ${reached >= firstOnTl ? segmentName(tl, reached) : 'the starting point'}`,
        missing,
      );
    }
  }
}

export async function verifyWalArchive(opts: WalVerifyOptions): Promise<WalVerifyReport> {
  const t0 = Date.now();
  const source = walSource(opts.config, { archiveDir: opts.archiveDir });
  const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'guts-wal-verify-'));
  try {
    const base = opts.from ? await backupPosition(opts.from) : await latestTimelineStart(source, tmpDir);
    const histories = new HistoryReader(source, tmpDir);
    const exists = async (name: string) => {
      const ok = await source.fetch(name, path.join(tmpDir, name));
      fs.rmSync(path.join(tmpDir, name), { force: true });
      return ok;
    };
    const steps = opts.from ? await histories.resolvePath(base, opts.timeline ?? 'latest', exists) : [{ timeline: base.timeline, endSegment: Infinity }];
    const walker = new ArchiveWalker({ source, tmpDir, steps, base, prefetch: opts.prefetch });
    let batches = 0;
    const marks: string[] = [];
    let firstName: string | null = null;
    let lastName: string | null = null;
    const range = { db: null as { first: number; last: number } | null, consensus: null as { first: number; last: number } | null };
    let firstUs = 0;
    let lastUs = 0;
    try {
      for (;;) {
        const w = await walker.next();
        if (!w) break;
        firstName ??= w.name;
        lastName = w.name;
        for (const r of w.records) {
          batches++;
          if (r.mark !== undefined) marks.push(r.mark);
          const last = r.seq + r.count - 1;
          const rg = range[r.db];
          if (rg) rg.last = last;
          else range[r.db] = { first: r.seq, last };
          if (r.timeUs > 0) {
            if (!firstUs) firstUs = r.timeUs;
            lastUs = Math.max(lastUs, r.timeUs);
          }
        }
      }
    } finally {
      await walker.close();
    }
    await checkHistoryEvidence(histories, steps, base, walker.last, source.describe);
    const iso = (us: number) => new Date(Math.floor(us / 1000)).toISOString();
    return {
      archive: source.describe,
      from: { backup: opts.from ? path.resolve(opts.from) : null, timeline: base.timeline, segment: segmentName(base.timeline, base.segment), db_sequence: base.db_seq, consensus_sequence: base.consensus_seq },
      timelines: [...new Set(steps.map((s) => s.timeline))],
      segments: walker.segments,
      wal_bytes: walker.bytes,
      batches,
      marks,
      first_segment: firstName,
      last_segment: lastName,
      end_of_archive: walker.endName,
      db_sequence: range.db,
      consensus_sequence: range.consensus,
      commit_time: firstUs ? { first: iso(firstUs), last: iso(lastUs) } : null,
      elapsed_seconds: (Date.now() - t0) / 1000,
    };
  } finally {
    fs.rmSync(tmpDir, { recursive: true, force: true });
  }
}
