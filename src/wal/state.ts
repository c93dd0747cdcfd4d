// DATA_DIR/wal/: the archiver's state.json and its pending/ queue
// (docs/FORMAT.md "Archiver state"). Read by the node at start, by `wal status`
// without a node, by backups (the manifest's `wal` position) and written by a
// restore that starts a new timeline.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { GutsError } from '../errors';
import { writeFileAtomic, writeFileAtomicAsync } from '../fsutil';
import { parseHistoryName, parseSegmentName, ZERO_CHECKSUM } from './segment';

export interface WalState {
  format: 'guts-wal-state';
  format_version: 1;
  timeline: number;
  /** number of the open segment (the next one to close) */
  next_segment: number;
  /** first sequences of the open segment: everything before is in closed segments */
  db_next_seq: number;
  consensus_next_seq: number;
  /** checksum of segment next_segment - 1 of this chain (zeros at a chain start) */
  prev_checksum: string;
  last_archived: { name: string; last_commit_time: string | null; archived_at: string } | null;
  archived_segments_total: number;
  archive_failures_total: number;
  last_error: { message: string; at: string } | null;
  timeline_switches_total: number;
  /** archiving started, or a timeline switched after a gap: no base backup covers this timeline yet */
  needs_base_backup: boolean;
  /** restore point names `wal mark` made on this data dir (a name is used once: --until-mark stops at the first) */
  marks?: string[];
  /** db/IDENTITY of the store this state follows (absent: adopted at the next node start) */
  db_identity?: string;
  /** timeline ids this node chose but found taken in the archive before their history was archived (src/wal/reclaim.ts): never archived from here */
  abandoned_timelines?: number[];
}

/** Where a base backup's WAL replay starts (MANIFEST.json `wal`). */
export interface WalPosition {
  timeline: number;
  segment: number;
  db_seq: number | null;
  consensus_seq: number | null;
}

export function walLayout(dataDir: string) {
  const dir = path.join(dataDir, 'wal');
  return { dir, state: path.join(dir, 'state.json'), pending: path.join(dir, 'pending') };
}

export function newWalState(dbNextSeq: number, consensusNextSeq: number): WalState {
  return {
    format: 'guts-wal-state',
    format_version: 1,
    timeline: 1,
    next_segment: 1,
    db_next_seq: dbNextSeq,
    consensus_next_seq: consensusNextSeq,
    prev_checksum: ZERO_CHECKSUM,
    last_archived: null,
    archived_segments_total: 0,
    archive_failures_total: 0,
    last_error: null,
    timeline_switches_total: 0,
    needs_base_backup: true,
  };
}

/** null when there is no state.json; GUTS_CORRUPT naming the file when it is not a valid one. */
export function readWalState(dataDir: string): WalState | null {
  const file = walLayout(dataDir).state;
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new GutsError('GUTS_IO', `cannot read ${file}: ${(e as Error).message}`, file);
  }
  let s: WalState;
  try {
    s = JSON.parse(text) as WalState;
  } catch {
    throw new GutsError('GUTS_CORRUPT', `${file} is not JSON`, file);
  }
  const pos = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 1;
  if (s?.format !== 'guts-wal-state' || s.format_version !== 1 || !pos(s.timeline) || !pos(s.next_segment) || !pos(s.db_next_seq) || !pos(s.consensus_next_seq) || !/^[0-9a-f]{64}$/.test(s.prev_checksum)) {
    throw new GutsError('GUTS_CORRUPT', `${file} has missing or invalid fields (timeline, next_segment, db_next_seq, consensus_next_seq, prev_checksum)`, file);
  }
  // Counters and notes written by older states default quietly.
  return {
    ...newWalState(s.db_next_seq, s.consensus_next_seq),
    ...s,
    archived_segments_total: s.archived_segments_total ?? 0,
    archive_failures_total: s.archive_failures_total ?? 0,
    timeline_switches_total: s.timeline_switches_total ?? 0,
    last_archived: s.last_archived ?? null,
    last_error: s.last_error ?? null,
    needs_base_backup: Boolean(s.needs_base_backup),
  };
}

export function ensureWalDirs(dataDir: string): void {
  const l = walLayout(dataDir);
  fs.mkdirSync(l.pending, { recursive: true, mode: 0o700 });
}

/** Synchronous atomic write (restore, tests). */
export function writeWalState(dataDir: string, s: WalState): void {
  writeFileAtomic(walLayout(dataDir).state, JSON.stringify(s, null, 2) + '\n', 0o600);
}

/** Atomic write off the event loop (the node). */
export function writeWalStateAsync(dataDir: string, s: WalState): Promise<void> {
  return writeFileAtomicAsync(walLayout(dataDir).state, JSON.stringify(s, null, 2) + '\n', 0o600);
}

export interface PendingFile {
  name: string;
  bytes: number;
  kind: 'segment' | 'history';
  timeline: number;
  /** segment number; for a history file, its timeline's first segment is not known from the name: -1 (sorts first) */
  segment: number;
}

/** Archiving order: by timeline, a timeline's history file before its segments, then by segment number. */
export function comparePending(a: Pick<PendingFile, 'timeline' | 'segment'>, b: Pick<PendingFile, 'timeline' | 'segment'>): number {
  return a.timeline - b.timeline || a.segment - b.segment;
}

/** Files of wal/pending/ in archiving order (temp files and strangers are not listed). */
export function listPending(dataDir: string): PendingFile[] {
  const dir = walLayout(dataDir).pending;
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const out: PendingFile[] = [];
  for (const name of names) {
    const seg = parseSegmentName(name);
    const hist = seg ? null : parseHistoryName(name);
    if (!seg && hist === null) continue;
    let bytes = 0;
    try {
      bytes = fs.statSync(path.join(dir, name)).size;
    } catch {
      continue;
    }
    out.push(seg ? { name, bytes, kind: 'segment', ...seg } : { name, bytes, kind: 'history', timeline: hist!, segment: -1 });
  }
  return out.sort(comparePending);
}
