// Integrity check of a data dir (issue 4, `guts-node verify --data-dir DIR`).
// The store is opened read-only (refused with GUTS_LOCKED while a live process
// holds it). Always: block checksums of every live SST file of db/ and
// consensus/ and the store metadata. With `full`: every object re-hashed in
// native worker threads, type bytes, counts by type against the stored
// counts, refs against objects, the repository count (native/object_verifier.cc).
//
// Problems are lines starting CORRUPT / MISMATCH / ERROR (runbooks grep them).
// `backup verify --deep` and `backup restore --verify` call verifyDataDir().
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { errorCode, GutsError } from './errors';
import { Counts, native, NativeStore, ObjectProblem, Progress } from './native';
import { formatBytes } from './progress';
import { dataDirLayout, GutsStore, storeLockHolder } from './store';
import { storePermissionWarnings } from './store-permissions';

export interface VerifyOptions {
  /** re-hash every object, recount, check refs (otherwise checksums + metadata) */
  full: boolean;
  /** native worker threads (default: available cores) */
  threads?: number;
  /** collect the repositories named by problems (implies nothing else; full mode names them anyway) */
  listAffected?: boolean;
  /** called once the long native task starts; returns a stop function (progress bars) */
  onProgress?: (poll: () => Progress) => () => void;
  /** abort signal: cancels the native task (GUTS_CANCELLED) */
  signal?: AbortSignal;
}

export interface VerifyReport {
  ok: boolean;
  dataDir: string;
  full: boolean;
  threads: number;
  /** found by the full scan; the stored counts without `full` */
  counts: Counts;
  /** counts kept in the store's metadata */
  stored: Counts | null;
  /** one line per problem, each starting CORRUPT, MISMATCH or ERROR */
  problems: string[];
  /** objects re-hashed (full) or stored (quick) */
  objects: number;
  /** object bytes re-hashed (full) or SST bytes checksummed (quick) */
  bytes: number;
  refs: number | null;
  sstFiles: number;
  sstBytes: number;
  /** repositories named by any problem, sorted */
  affected: string[];
  /** the consensus store's block count and finalized height (null when absent or undecodable) */
  consensus: { blocks: number; finalizedHeight: number } | null;
  /** false for a consensus-only data dir (e.g. an extracted --consensus-only backup) */
  hasObjectStore: boolean;
  durationS: number;
  /** not problems of the data: e.g. a store readable by group/other users (src/store-permissions.ts) */
  warnings: string[];
}

const ZERO: Counts = { commit: 0, tree: 0, blob: 0, tag: 0, repositories: 0 };

export function problemLine(p: ObjectProblem): string {
  let line = `${p.kind} ${p.message}`;
  if (p.repositories.length) line += ` (repositories: ${p.repositories.join(', ')})`;
  else if (p.kind === 'CORRUPT' && p.id) line += ' (in no repository)';
  return line;
}

function exists(p: string): boolean {
  return fs.existsSync(p);
}

/** Opens what the data dir holds, read-only; a store that cannot even open as corrupt is a problem, not an exception. */
async function openReadOnly(dir: string): Promise<{ store: NativeStore; close: () => Promise<void> } | { problem: string }> {
  const l = dataDirLayout(dir);
  const hasDb = exists(path.join(l.db, 'CURRENT'));
  const hasConsensus = exists(path.join(l.consensus, 'CURRENT'));
  try {
    if (hasDb) {
      const s = await GutsStore.open(dir, { readOnly: true, create: false, consensus: hasConsensus });
      return { store: s.native, close: () => s.close() };
    }
    if (!hasConsensus) throw new GutsError('GUTS_NOT_FOUND', `no store in ${dir} (missing db/CURRENT and consensus/CURRENT)`, dir);
    // consensus-only data (e.g. an extracted --consensus-only backup)
    const holder = storeLockHolder(dir);
    if (holder) throw new GutsError('GUTS_LOCKED', `store ${dir} is locked by process ${holder} (is the node running?)`, dir);
    const n = new native.Store(dir, { readOnly: true, create: false, db: false });
    await n.open();
    return { store: n, close: () => n.close() };
  } catch (err) {
    if (errorCode(err) === 'GUTS_CORRUPT') return { problem: `CORRUPT store ${dir} cannot be opened: ${(err as Error).message}` };
    throw err;
  }
}

export async function verifyDataDir(dir: string, opts: VerifyOptions): Promise<VerifyReport> {
  const started = process.hrtime.bigint();
  const dataDir = path.resolve(dir);
  const threads = opts.threads && opts.threads > 0 ? opts.threads : os.availableParallelism();
  const report: VerifyReport = {
    ok: false,
    dataDir,
    full: opts.full,
    threads,
    counts: { ...ZERO },
    stored: null,
    problems: [],
    objects: 0,
    bytes: 0,
    refs: null,
    sstFiles: 0,
    sstBytes: 0,
    affected: [],
    consensus: null,
    hasObjectStore: true,
    durationS: 0,
    warnings: [],
  };
  const finish = () => {
    report.ok = report.problems.length === 0;
    report.durationS = Number(process.hrtime.bigint() - started) / 1e9;
    return report;
  };
  if (!fs.existsSync(dataDir)) throw new GutsError('GUTS_NOT_FOUND', `data dir ${dataDir} does not exist`, dataDir);
  report.warnings = storePermissionWarnings(dataDir);

  const opened = await openReadOnly(dataDir);
  if ('problem' in opened) {
    report.problems.push(opened.problem);
    return finish();
  }
  const { store } = opened;
  try {
    const hasDb = exists(path.join(dataDirLayout(dataDir).db, 'CURRENT'));
    // With `full` the object scan verifies the block checksums of the objects CF itself.
    const sums = await native.verifyChecksums(store, { threads, skipObjects: opts.full && hasDb });
    report.sstFiles = sums.files;
    report.sstBytes = sums.bytes;
    report.problems.push(...sums.problems.map(problemLine));
    report.hasObjectStore = hasDb;
    if (exists(path.join(dataDirLayout(dataDir).consensus, 'CURRENT'))) {
      try {
        report.consensus = await store.consensusInfo();
      } catch (err) {
        if (errorCode(err) !== 'GUTS_CORRUPT') throw err; // a problem line already says why
      }
    }
    if (!opts.full || !hasDb) {
      report.bytes = sums.bytes;
    }
    if (!opts.full) {
      // Quick mode: the counts the store keeps (they decoded, or a problem says why not).
      if (!hasDb) return finish();
      try {
        report.stored = await store.counts();
        report.counts = { ...report.stored };
        report.objects = report.stored.commit + report.stored.tree + report.stored.blob + report.stored.tag;
      } catch (err) {
        if (errorCode(err) !== 'GUTS_CORRUPT') throw err;
      }
      report.bytes = sums.bytes;
      return finish();
    }

    const task = native.verifyObjects(store, { threads, listAffected: Boolean(opts.listAffected) });
    const stop = opts.onProgress?.(() => task.progress());
    const onAbort = () => task.cancel();
    opts.signal?.addEventListener('abort', onAbort);
    if (opts.signal?.aborted) task.cancel();
    let r;
    try {
      r = await task.promise;
    } finally {
      stop?.();
      opts.signal?.removeEventListener('abort', onAbort);
    }
    if (hasDb) {
      report.counts = r.counts;
      report.stored = r.stored;
      report.objects = r.objects;
      report.bytes = r.bytes;
      report.refs = r.refs;
    }
    report.problems.push(...r.problems.map(problemLine));
    if (r.problemsDropped) report.problems.push(`ERROR ${r.problemsDropped} more problems not listed (only the first 10,000 are kept)`);
    report.affected = r.affected;
    return finish();
  } finally {
    await opened.close();
  }
}

const nf = new Intl.NumberFormat('en-US');
export const formatCount = (n: number): string => nf.format(n);

/** "50,000 blobs, 10,000 trees, 5,000 commits" (tags only when present) — the guide's order. */
export function formatTypeCounts(c: Pick<Counts, 'commit' | 'tree' | 'blob' | 'tag'>): string {
  const parts = [`${formatCount(c.blob)} blobs`, `${formatCount(c.tree)} trees`, `${formatCount(c.commit)} commits`];
  if (c.tag) parts.push(`${formatCount(c.tag)} tags`);
  return parts.join(', ');
}

/** The one-line summary of a clean report. */
export function formatSummary(r: VerifyReport): string {
  const blocks = r.consensus ? `${formatCount(r.consensus.blocks)} consensus blocks (finalized ${formatCount(r.consensus.finalizedHeight)})` : '';
  if (!r.hasObjectStore) {
    return `OK: consensus only: ${blocks || 'no consensus store'}, ${formatCount(r.sstFiles)} SST files (${formatBytes(r.sstBytes)}) checksummed in ${r.durationS.toFixed(1)} s`;
  }
  const objects = `${formatCount(r.objects)} objects (${formatTypeCounts(r.counts)}), ${formatCount(r.counts.repositories)} repositories`;
  const secs = `${r.durationS < 1 ? r.durationS.toFixed(2) : r.durationS.toFixed(1)} s`;
  if (r.full) return `OK: ${objects}, ${formatBytes(r.bytes)} checked in ${secs}`;
  return `OK: ${objects}, ${formatCount(r.sstFiles)} SST files (${formatBytes(r.sstBytes)}) checksummed in ${secs}`;
}
