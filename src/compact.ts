// `guts-node compact` (issue 14): rewrites every SST file of a data dir with
// the store's current options (LZ4 above, ZSTD at the bottommost level), so a
// store written before issue 14 (snappy everywhere) takes its new, smaller
// format. Through the running node when one serves the data dir (writes go on
// meanwhile; the admin op `compact`), else offline with the store's lock.
// Every compaction RocksDB runs is atomic: an interrupted compact leaves a
// store that is whole, part in the old format, part in the new.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { GutsError } from './errors';
import { native, Progress, SstSummary } from './native';
import { connectNode } from './node-client';
import { dataDirLayout, GutsStore, storeLockHolder } from './store';

export interface CompactStoreResult {
  before: SstSummary;
  after: SstSummary;
  /** column families compacted (5 of db/, 1 of consensus/) */
  columnFamilies: number;
  durationS: number;
}

export interface CompactResult extends CompactStoreResult {
  dataDir: string;
  via: 'node' | 'store';
}

export interface CompactOptions {
  /** called once the native task starts (offline only); returns a stop function */
  onProgress?: (poll: () => Progress) => () => void;
  /** cancels the compaction (GUTS_CANCELLED); what was rewritten stays */
  signal?: AbortSignal;
}

/** Compacts an open, writable store (the node calls this for the admin op). */
export async function compactStore(store: GutsStore, opts: CompactOptions = {}): Promise<CompactStoreResult> {
  const t0 = process.hrtime.bigint();
  const task = native.compactStore(store.native);
  const onAbort = () => task.cancel();
  if (opts.signal?.aborted) task.cancel();
  opts.signal?.addEventListener('abort', onAbort);
  const stop = opts.onProgress?.(() => task.progress());
  try {
    const r = await task.promise;
    return { ...r, durationS: Number(process.hrtime.bigint() - t0) / 1e9 };
  } finally {
    stop?.();
    opts.signal?.removeEventListener('abort', onAbort);
  }
}

/** Compacts the data dir's store, through its running node or offline. */
export async function compactDataDir(dir: string, opts: CompactOptions = {}): Promise<CompactResult> {
  const dataDir = path.resolve(dir);
  const node = await connectNode(dataDir);
  if (node) {
    try {
      return { ...(await node.compact()), dataDir, via: 'node' };
    } finally {
      node.close();
    }
  }
  const l = dataDirLayout(dataDir);
  if (!fs.existsSync(path.join(l.db, 'CURRENT'))) throw new GutsError('GUTS_NOT_FOUND', `no store in ${dataDir} (missing db/CURRENT)`, dataDir);
  const holder = storeLockHolder(dataDir);
  if (holder && holder !== process.pid) throw new GutsError('GUTS_LOCKED', `store ${dataDir} is locked by process ${holder} (is the node running?)`, dataDir);
  const store = await GutsStore.open(dataDir, { create: false, consensus: fs.existsSync(path.join(l.consensus, 'CURRENT')) });
  try {
    return { ...(await compactStore(store, opts)), dataDir, via: 'store' };
  } finally {
    await store.close();
  }
}

/** "snappy 12.3 MB, zstd 1.0 MB" */
export function formatCompression(s: SstSummary, formatBytes: (n: number) => string): string {
  const parts = Object.entries(s.compression)
    .sort((a, b) => b[1] - a[1])
    .map(([name, bytes]) => `${name} ${formatBytes(bytes)}`);
  return parts.length ? parts.join(', ') : 'no SST files';
}
