// Test helpers for the restore side: a store with archiving on, segments cut
// from its real WAL (walTail + encodeSegment, as the node's archiver does, at
// points the test chooses) into a real archive directory, and base backups
// whose MANIFEST.json carries the WAL position.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { native } from '../../src/native';
import { GutsStore } from '../../src/store';
import { encodeSegment, segmentName, WalRecord, ZERO_CHECKSUM } from '../../src/wal/segment';
import { buildArchive, checkpointFiles } from '../fixtures/archives';

export interface ArchiverState {
  timeline: number;
  next_segment: number;
  db_next_seq: number;
  consensus_next_seq: number;
  prev_checksum: string;
}

/** Cuts segments from a store's WAL into archiveDir on demand. */
export class SegmentCutter {
  state: ArchiverState;
  names: string[] = [];
  constructor(
    readonly store: GutsStore,
    readonly archiveDir: string,
    state?: ArchiverState,
  ) {
    this.state = state ?? { timeline: 1, next_segment: 1, db_next_seq: 1, consensus_next_seq: 1, prev_checksum: ZERO_CHECKSUM };
    fs.mkdirSync(archiveDir, { recursive: true });
  }

  /** The data dir's wal/state.json as a restore wrote it. */
  static fromStateFile(store: GutsStore, archiveDir: string): SegmentCutter {
    const s = JSON.parse(fs.readFileSync(path.join(store.dataDir, 'wal', 'state.json'), 'utf8')) as ArchiverState;
    return new SegmentCutter(store, archiveDir, { timeline: s.timeline, next_segment: s.next_segment, db_next_seq: s.db_next_seq, consensus_next_seq: s.consensus_next_seq, prev_checksum: s.prev_checksum });
  }

  /** Everything committed since the last cut, as one segment (merged in commit-time order). Null when nothing was written. */
  async cut(): Promise<string | null> {
    const db = await native.walTail(this.store.native, 'db', this.state.db_next_seq, { maxBatches: 1e6, maxBytes: 1 << 30 });
    const cons = await native.walTail(this.store.native, 'consensus', this.state.consensus_next_seq, { maxBatches: 1e6, maxBytes: 1 << 30 });
    if (db.gap || cons.gap) throw new Error(`WAL gap while cutting: ${JSON.stringify(db.gap ?? cons.gap)}`);
    const records: WalRecord[] = [
      ...db.batches.map((b) => ({ db: 'db' as const, seq: b.seq, count: b.count, timeUs: b.timeUs, data: b.data, ...(b.mark !== undefined ? { mark: b.mark } : {}) })),
      ...cons.batches.map((b) => ({ db: 'consensus' as const, seq: b.seq, count: b.count, timeUs: b.timeUs, data: b.data, ...(b.mark !== undefined ? { mark: b.mark } : {}) })),
    ];
    if (!records.length) return null;
    records.sort((a, b) => a.timeUs - b.timeUs || (a.db === b.db ? a.seq - b.seq : 0));
    const s = this.state;
    const { file, checksum } = await encodeSegment({ timeline: s.timeline, segment: s.next_segment, dbFirstSeq: s.db_next_seq, consensusFirstSeq: s.consensus_next_seq, prevChecksum: s.prev_checksum, records });
    const name = segmentName(s.timeline, s.next_segment);
    fs.writeFileSync(path.join(this.archiveDir, name), file, { mode: 0o600 });
    this.names.push(name);
    for (const r of records) {
      if (r.db === 'db') s.db_next_seq = r.seq + r.count;
      else s.consensus_next_seq = r.seq + r.count;
    }
    s.next_segment++;
    s.prev_checksum = checksum;
    return name;
  }
}

/** A full backup of the store (checkpoint -> archive) whose manifest records the cutter's current position. */
export async function baseBackup(store: GutsStore, cutter: SegmentCutter, dir: string, name: string): Promise<string> {
  const ck = path.join(dir, `.ck-${name}`);
  const info = await store.native.checkpoint(ck, { db: true, consensus: true });
  const counts = await store.counts();
  const b = buildArchive(dir, name, {
    files: checkpointFiles(ck),
    compression: 'zstd-frames',
    kind: 'full',
    objects: { commit: counts.commit, tree: counts.tree, blob: counts.blob, tag: counts.tag },
    repositories: counts.repositories,
    editManifest: (m) => {
      m.rocksdb = { db: { sequence: info.db!.sequence }, consensus: { sequence: info.consensus!.sequence } };
      m.wal = { timeline: cutter.state.timeline, segment: cutter.state.next_segment, db_seq: info.db!.sequence, consensus_seq: info.consensus!.sequence };
    },
  });
  fs.rmSync(ck, { recursive: true, force: true });
  return b.path;
}

/** Writes one blob per label into repo a/b; returns the labels' object ids. */
export async function writeBlobs(store: GutsStore, labels: string[]): Promise<string[]> {
  const ids: string[] = [];
  for (const l of labels) ids.push(...(await store.putObjects('a/b', [{ type: 'blob', data: Buffer.from(`blob ${l}\n`) }])).ids);
  return ids;
}

/** Which of ids a stopped data dir holds. */
export async function present(dataDir: string, ids: string[]): Promise<boolean[]> {
  const s = await GutsStore.open(dataDir, { readOnly: true });
  try {
    return await s.hasObjects(ids);
  } finally {
    await s.close();
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
