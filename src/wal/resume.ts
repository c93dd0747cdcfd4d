// Archiver start-up (src/wal/archiver.ts): what a restart finds in wal/pending/
// after a crash, which store state.json follows, and which timelines the
// archive already holds, so a fresh state never archives over them.
import * as fs from 'node:fs';
import * as path from 'node:path';

import type { GutsConfig } from '../config';
import type { Logger } from '../daemon/log';
import { fsyncDir, writeFileAtomicAsync } from '../fsutil';
import { encodeHistory, historyName, parseHistoryName, parseSegmentName, readSegmentHeader, segmentName, ZERO_CHECKSUM } from './segment';
import { listPending, PendingFile, WalState, walLayout } from './state';
import { walSource } from './target';

/** closedAt: when this process closed it (ms), for the archive latency estimate */
export type PendingEntry = PendingFile & { firstTimeUs: number; lastTimeUs: number; closedAt?: number };

/** db/IDENTITY: RocksDB's id of the store (a checkpoint, hence a restored store, gets a new one). */
export function readDbIdentity(dataDir: string): string | null {
  try {
    return fs.readFileSync(path.join(dataDir, 'db', 'IDENTITY'), 'utf8').trim() || null;
  } catch {
    return null;
  }
}

export function removeTempFiles(dataDir: string): void {
  const dir = walLayout(dataDir).pending;
  for (const n of fs.readdirSync(dir)) if (n.startsWith('.') && n.includes('.tmp-')) fs.rmSync(path.join(dir, n), { force: true });
}

/**
 * The files of pending/ in archiving order. A segment past state.json (renamed
 * in just before a crash, before state.json said so) is adopted into `state`
 * when it chains onto it; anything that does not check out is moved aside.
 */
export function adoptPending(dataDir: string, state: WalState, log: Logger): PendingEntry[] {
  const out: PendingEntry[] = [];
  for (const p of listPending(dataDir)) {
    const file = path.join(walLayout(dataDir).pending, p.name);
    let firstTimeUs = 0;
    let lastTimeUs = 0;
    if (p.kind === 'segment') {
      let h: ReturnType<typeof readSegmentHeader>;
      try {
        h = readSegmentHeader(fs.readFileSync(file), p.name);
      } catch (e) {
        quarantine(file, (e as Error).message, log);
        continue;
      }
      firstTimeUs = h.firstTimeUs;
      lastTimeUs = h.lastTimeUs;
      if (h.timeline === state.timeline && h.segment >= state.next_segment) {
        const chains = h.segment === state.next_segment && h.prevChecksum === state.prev_checksum && h.db.first === state.db_next_seq && h.consensus.first === state.consensus_next_seq;
        if (!chains) {
          quarantine(file, `does not follow state.json (segment ${state.next_segment}, db ${state.db_next_seq}, consensus ${state.consensus_next_seq})`, log);
          continue;
        }
        state.next_segment = h.segment + 1;
        state.db_next_seq = h.db.last + 1;
        state.consensus_next_seq = h.consensus.last + 1;
        state.prev_checksum = h.checksum;
        log.info('WAL: adopted a segment closed just before a crash', { segment: p.name });
      }
    }
    out.push({ ...p, firstTimeUs, lastTimeUs });
  }
  return out;
}

/** Never deleted silently: moved aside, logged; the operator decides. */
function quarantine(file: string, why: string, log: Logger): void {
  const to = `${file}.rejected`;
  fs.renameSync(file, to);
  fsyncDir(path.dirname(file));
  log.error('WAL: pending file moved aside', { file: to, reason: why });
}

/**
 * The newest timeline the archive holds (0: none), asked through
 * wal.restore_command or wal.archive_dir as PostgreSQL does: timeline 1 exists
 * when its first segment does, timeline N > 1 when its history file does.
 * null when the archive cannot be asked.
 */
export async function newestArchivedTimeline(dataDir: string, config: GutsConfig, log: Logger): Promise<number | null> {
  if (!config.wal.restore_command && !config.wal.archive_dir) {
    log.warn('WAL: cannot check the archive for the timelines it holds (set wal.restore_command or wal.archive_dir); assuming none past this one');
    return null;
  }
  const source = walSource(config);
  const probe = path.join(walLayout(dataDir).dir, '.probe');
  const has = async (name: string) => {
    try {
      return await source.fetch(name, probe);
    } finally {
      fs.rmSync(probe, { force: true });
    }
  };
  try {
    // A location that can list answers for every name (a pruned timeline 1, a history id skipped by a concurrent claim).
    let listed = 0;
    if (source.list) {
      for (const n of await source.list()) listed = Math.max(listed, parseSegmentName(n)?.timeline ?? parseHistoryName(n) ?? 0);
    }
    if (!listed && !(await has(segmentName(1, 1))) && !(await has(historyName(2)))) return 0;
    let newest = Math.max(1, listed);
    while (await has(historyName(newest + 1))) newest++;
    return newest;
  } catch (e) {
    log.error('WAL: cannot ask the archive for the timelines it holds; assuming none past this one', { error: (e as Error).message });
    return null;
  }
}

/** A fresh state moves to the timeline after `newest`, its history file queued in pending/. */
export async function startAfterArchivedTimeline(dataDir: string, state: WalState, newest: number, log: Logger): Promise<void> {
  state.timeline = newest + 1;
  const history = {
    timeline: state.timeline,
    parent_timeline: newest,
    branch: { segment: state.next_segment, db_seq: state.db_next_seq - 1, consensus_seq: state.consensus_next_seq - 1, prev_checksum: ZERO_CHECKSUM },
    reason: 'gap' as const,
    created: new Date().toISOString(),
  };
  await writeFileAtomicAsync(path.join(walLayout(dataDir).pending, historyName(state.timeline)), encodeHistory(history), 0o600);
  state.timeline_switches_total++;
  log.error('WAL: the archive already holds timelines up to this one: archiving on a new timeline so no archived segment is overwritten; take a new base backup', {
    archived_timeline: newest,
    new_timeline: state.timeline,
  });
}
