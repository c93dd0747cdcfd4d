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
import { formatBytes, groupDigits } from './progress';
import { dataDirLayout, storeLockHolder } from './store';
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
  /**
   * repositories named by any problem, sorted; when a problem cannot tell
   * which repositories it touches (affectedUnknown), every repository
   */
  affected: string[];
  /** some problem's repositories cannot be told: `affected` lists every repository that may be affected */
  affectedUnknown: boolean;
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
  if (p.repositoriesUnknown) line += ' (repositories: cannot tell, every repository may be affected)';
  else if (p.repositories.length) line += ` (repositories: ${p.repositories.join(', ')})`;
  else if (p.kind === 'CORRUPT' && (p.id || p.message.startsWith('objects key range'))) line += ' (in no repository)';
  return line;
}

function exists(p: string): boolean {
  return fs.existsSync(p);
}

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Why one RocksDB instance of the data dir (db/ or consensus/) cannot be
 * opened, or null when it looks openable. Called only when the data dir is a
 * store (it has db/ or consensus/): from then on anything missing is damage,
 * not "no store here".
 */
function instanceDamage(dir: string, name: 'db' | 'consensus'): string | null {
  const d = path.join(dir, name);
  if (!exists(d)) return `${name}/ is missing`;
  if (!isDir(d)) return `${d} is not a directory`;
  if (!exists(path.join(d, 'CURRENT'))) {
    const files = fs.readdirSync(d).length;
    return files ? `${d}/CURRENT is missing (${files} other file(s) left in ${name}/)` : `${d} is empty`;
  }
  return null;
}

type Opened = { store: NativeStore; close: () => Promise<void>; hasDb: boolean; hasConsensus: boolean; problems: string[] };

/**
 * Opens what the data dir holds, read-only. A directory with neither db/ nor
 * consensus/ is not a store (GUTS_NOT_FOUND, exit 2). Otherwise a store that
 * cannot be opened is damage: CORRUPT problems (exit 1), never an exception
 * and never OK. Layouts: db/ and consensus/ (a node's data dir, a full
 * backup), or consensus/ alone (a --consensus-only backup). db/ without
 * consensus/, a missing CURRENT, an empty db/, a MANIFEST RocksDB refuses:
 * CORRUPT. Whatever still opens is checked as well.
 */
async function openReadOnly(dir: string): Promise<Opened | { failed: string[] }> {
  const l = dataDirLayout(dir);
  if (!exists(l.db) && !exists(l.consensus)) {
    throw new GutsError('GUTS_NOT_FOUND', `${dir} is not a guts-node data dir (no db/ or consensus/)`, dir);
  }
  const holder = storeLockHolder(dir);
  if (holder && holder !== process.pid) throw new GutsError('GUTS_LOCKED', `store ${dir} is locked by process ${holder} (is the node running?)`, dir);
  const problems: string[] = [];
  // consensus/ alone is a consensus-only backup; db/ is never optional beside it otherwise
  const consensusOnly = !exists(l.db);
  let hasDb = !consensusOnly;
  let hasConsensus = true;
  for (const name of consensusOnly ? (['consensus'] as const) : (['db', 'consensus'] as const)) {
    const why = instanceDamage(dir, name);
    if (!why) continue;
    problems.push(`CORRUPT store ${dir} cannot be opened: ${why}`);
    if (name === 'db') hasDb = false;
    else hasConsensus = false;
  }
  if (!hasDb && !hasConsensus) return { failed: problems };
  const tryOpen = async (db: boolean, consensus: boolean): Promise<NativeStore | string> => {
    const n = new native.Store(dir, { readOnly: true, create: false, db, consensus });
    try {
      await n.open();
      return n;
    } catch (err) {
      // CURRENT is there but RocksDB refuses the rest (MANIFEST missing or damaged, a listed file gone).
      if (['GUTS_CORRUPT', 'GUTS_NOT_FOUND', 'GUTS_IO', 'GUTS_INVALID_ARGUMENT'].includes(errorCode(err))) {
        return `CORRUPT store ${dir} cannot be opened: ${(err as Error).message}`;
      }
      throw err;
    }
  };
  const opened = (n: NativeStore, db: boolean, consensus: boolean): Opened => ({ store: n, close: () => n.close(), hasDb: db, hasConsensus: consensus, problems });
  const both = await tryOpen(hasDb, hasConsensus);
  if (typeof both !== 'string') return opened(both, hasDb, hasConsensus);
  if (!(hasDb && hasConsensus)) return { failed: [...problems, both] };
  // One of the two refused: check the other alone.
  const dbOnly = await tryOpen(true, false);
  if (typeof dbOnly !== 'string') {
    const c = await tryOpen(false, true);
    if (typeof c === 'string') {
      problems.push(c);
      return opened(dbOnly, true, false);
    }
    await c.close(); // each opens alone: report what opening both said
    await dbOnly.close();
    return { failed: [...problems, both] };
  }
  problems.push(dbOnly);
  const c = await tryOpen(false, true);
  if (typeof c === 'string') return { failed: problems };
  return opened(c, false, true);
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
    affectedUnknown: false,
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
  if ('failed' in opened) {
    report.problems.push(...opened.failed);
    report.hasObjectStore = exists(dataDirLayout(dataDir).db);
    // db/ unreadable: which repositories are hurt cannot be told at all
    report.affectedUnknown = report.hasObjectStore;
    return finish();
  }
  const { store, hasDb } = opened;
  report.problems.push(...opened.problems);
  let unknown = !hasDb && exists(dataDirLayout(dataDir).db);
  try {
    // With `full` the object scan verifies the block checksums of the objects CF itself.
    const sums = await native.verifyChecksums(store, { threads, skipObjects: opts.full && hasDb });
    report.sstFiles = sums.files;
    report.sstBytes = sums.bytes;
    report.problems.push(...sums.problems.map(problemLine));
    if (sums.problems.some((p) => p.repositoriesUnknown)) unknown = true;
    report.hasObjectStore = exists(dataDirLayout(dataDir).db);
    if (opened.hasConsensus) {
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
    if (unknown || r.problems.some((p) => p.repositoriesUnknown)) {
      // Cannot tell which: every repository may be affected (never an empty list that reads as "none").
      report.affectedUnknown = true;
      try {
        const all = hasDb ? (await store.listRepos()).map((x) => x.name) : [];
        report.affected = [...new Set([...report.affected, ...all])].sort();
      } catch (err) {
        if (errorCode(err) !== 'GUTS_CORRUPT' && errorCode(err) !== 'GUTS_IO') throw err;
        report.problems.push(`ERROR repository records unreadable: ${(err as Error).message}`);
      }
    }
    return finish();
  } finally {
    await opened.close();
  }
}

/** "1,234,567" (en-US grouping without Intl: creating a NumberFormat loads ICU, a serial part of every verify's start). */
export const formatCount = groupDigits;

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
