// A timeline id taken in the archive after this node chose it. The archiver
// queues a new timeline's history file ahead of the timeline's segments, and
// that push is the claim of the id (PostgreSQL's .history files). When the
// archive is unreachable at the switch, the push waits in the queue; if
// another restore or node claims the same id meanwhile, the push meets a
// different history under the name. Then nothing of this timeline has been
// archived yet (its history goes first), so it is renumbered: the next free
// id, its history and the segments waiting in wal/pending/ rewritten under it
// (each segment re-sealed: the timeline is in its header and checksum, the
// chain recomputed), state.json moved to it, the old files dropped.
import * as fs from 'node:fs';
import * as path from 'node:path';

import type { GutsConfig } from '../config';
import type { Logger } from '../daemon/log';
import type { GutsError } from '../errors';
import { fsyncDir, writeFileAtomicAsync } from '../fsutil';
import { newestArchivedTimeline, PendingEntry } from './resume';
import { decodeHistory, decodeSegment, encodeHistory, encodeSegment, historyName, segmentName } from './segment';
import { comparePending, WalState, walLayout } from './state';
import { walSource } from './target';

/**
 * Did the failed push of history file `file` (archived name `name`) meet
 * another history under its name? Yes when the built-in target said
 * GUTS_EXISTS; after a failed wal.archive_command, when the archive can be
 * read (wal.restore_command or wal.archive_dir) and holds different bytes
 * under the name. A node with only wal.archive_command cannot tell (no).
 */
export async function historyTaken(dataDir: string, config: GutsConfig, name: string, file: string, err: unknown): Promise<boolean> {
  if ((err as GutsError | null)?.code === 'GUTS_EXISTS') return true;
  if (!config.wal.restore_command && !config.wal.archive_dir) return false;
  const probe = path.join(walLayout(dataDir).dir, '.probe-history');
  try {
    if (!(await walSource(config).fetch(name, probe))) return false;
    return !fs.readFileSync(probe).equals(fs.readFileSync(file));
  } catch {
    return false; // the archive cannot be read either: an outage, retried as one
  } finally {
    fs.rmSync(probe, { force: true });
  }
}

/** Moves the current timeline (nothing of it archived) to the next free id; returns the new pending queue. */
export async function renumberTimeline(dataDir: string, state: WalState, saveState: () => Promise<void>, pending: PendingEntry[], config: GutsConfig, log: Logger): Promise<PendingEntry[]> {
  const dir = walLayout(dataDir).pending;
  const old = state.timeline;
  const newest = await newestArchivedTimeline(dataDir, config, log);
  let next = Math.max(old + 1, newest === null ? 0 : newest + 1);
  for (const p of pending) next = Math.max(next, p.timeline + 1);
  const oldHistory = decodeHistory(fs.readFileSync(path.join(dir, historyName(old))), historyName(old));
  const { format: _f, format_version: _v, ...fields } = oldHistory;
  const history = encodeHistory({ ...fields, timeline: next, created: new Date().toISOString() });
  const out: PendingEntry[] = pending.filter((p) => p.timeline !== old);
  await writeFileAtomicAsync(path.join(dir, historyName(next)), history, 0o600);
  out.push({ name: historyName(next), bytes: history.length, kind: 'history', timeline: next, segment: -1, firstTimeUs: 0, lastTimeUs: 0 });
  let prev: string | null = null;
  const segments = pending.filter((p) => p.kind === 'segment' && p.timeline === old).sort(comparePending);
  for (const p of segments) {
    const seg = await decodeSegment(await fs.promises.readFile(path.join(dir, p.name)), p.name);
    const sealed = await encodeSegment({
      timeline: next,
      segment: seg.segment,
      dbFirstSeq: seg.db.first,
      consensusFirstSeq: seg.consensus.first,
      prevChecksum: prev ?? seg.prevChecksum, // the first keeps its branch point's checksum
      records: seg.records,
    });
    const name = segmentName(next, seg.segment);
    await writeFileAtomicAsync(path.join(dir, name), sealed.file, 0o600);
    out.push({ ...p, name, bytes: sealed.file.length, timeline: next });
    prev = sealed.checksum;
  }
  // state.json moves only once every file of the new id is durable; the old
  // ones are dropped after it (a crash in between: start-up drops them).
  state.timeline = next;
  if (prev !== null) state.prev_checksum = prev;
  state.abandoned_timelines = [...(state.abandoned_timelines ?? []), old];
  await saveState();
  for (const p of pending) if (p.timeline === old) await fs.promises.rm(path.join(dir, p.name), { force: true });
  fsyncDir(dir);
  log.error('WAL: timeline id taken in the archive by another restore or node while its history waited to be archived; renumbered what is pending to the next free id', {
    taken_timeline: old,
    new_timeline: next,
    segments: segments.length,
  });
  return out.sort(comparePending);
}

/** Start-up: files of timelines renumbered away (a crash before they were dropped) leave pending/. */
export function dropAbandoned(dataDir: string, state: WalState, pending: PendingEntry[]): PendingEntry[] {
  const gone = new Set(state.abandoned_timelines ?? []);
  if (!gone.size) return pending;
  const keep = pending.filter((p) => !gone.has(p.timeline));
  for (const p of pending) if (gone.has(p.timeline)) fs.rmSync(path.join(walLayout(dataDir).pending, p.name), { force: true });
  return keep;
}
