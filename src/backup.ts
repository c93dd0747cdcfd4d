// Backup creation: a RocksDB checkpoint of the data dir (hard links, O(1)),
// streamed by the native archive writer into FILE.partial (tar + parallel
// zstd/gzip frames, per-file XXH3-128, SHA-256 of the archive on the same
// pass), renamed into place, with a FILE.sha256 sidecar. Used by the CLI
// (`guts-node backup create`) and by the node's scheduler.
//
// The checkpoint comes from the running node when one serves the data dir
// (through its admin socket: the CLI never fights the node for the store
// lock), else from the store opened here. Live files are never archived.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { checkOutput } from './backup-output';
import { errorCode, fsError, GutsError } from './errors';
import { isProcessAlive } from './fsutil';
import { writeLastBackup } from './metrics';
import { ArchiveEntrySpec, ArchiveFormat, CheckpointInfo, Counts, CreateArchiveResult, native, TaskHandle } from './native';
import { describeCheckpoint } from './daemon/checkpoints';
import { connectNode, NodeClient } from './node-client';
import { dataDirLayout, GutsStore, storeLockHolder } from './store';
import { VERSION } from './version';
import { resolveStorePath } from './restore-guard';
import { readWalState, writeWalState } from './wal/state';

export type BackupKind = 'full' | 'hot' | 'consensus-only';

export const DEFAULT_FRAME_SIZE = 8 * 1024 * 1024;

export interface CreateBackupOptions {
  dataDir: string;
  /** archive path; its extension picks the format: .tar.zst, .tar.gz or .tar */
  output: string;
  /** 'hot' with no node serving the data dir becomes 'full' (see `log`) */
  kind?: BackupKind;
  /** notes for the operator (stderr): e.g. which path a --hot backup took */
  log?: (line: string) => void;
  /** node key file to store as keys/node.key (0600); omitted when unset */
  keyFile?: string;
  /** config file to store as config/config.yaml (0600); omitted when unset */
  configFile?: string;
  /** requested compression level (default 3; zstd picks parameters per chunk, see docs/FORMAT.md) */
  level?: number;
  /** compression threads (default: number of cores) */
  threads?: number;
  /** replace an existing output file that is not a guts-node archive (one that is, is replaced anyway: rotation by name) */
  force?: boolean;
  /**
   * Stream the archive into this descriptor (the write end of a pipe to an
   * upload, src/location/backup-stream.ts) instead of writing `output`: no
   * file, no sidecar, no last-backup record (the caller stores them once the
   * upload completed); `output` is the URL that names it. The writer owns the
   * descriptor from the moment onTask is called.
   */
  outputFd?: number;
  frameSize?: number;
  /** aborting cancels the backup: nothing is left behind, GUTS_CANCELLED is thrown */
  signal?: AbortSignal;
  /** called once the archive is being written (progress polling) */
  onTask?: (task: TaskHandle<CreateArchiveResult>) => void;
  /** a store this process already holds open (the node itself); else opened here or reached through the node */
  store?: GutsStore;
  /**
   * When the checkpoint comes from a running node, drop this whole process to
   * background priority (SCHED_IDLE CPU, idle I/O class) before archiving, so
   * the node's request threads preempt compression at once. For CLI processes
   * only: never set it in a process that serves requests itself.
   */
  backgroundWithNode?: boolean;
  /**
   * In background mode, the share of time each archiver thread may run, in
   * (0, 1] (default DEFAULT_BACKGROUND_CPU_SHARE): the threads sleep as long
   * as they worked times (1 - share) / share between 256 KiB slices. At full
   * speed even a SCHED_IDLE reader doubles the node's p99 write latency on a
   * small machine (bench/node-bench.ts); 1 turns pacing off.
   */
  cpuShare?: number;
}

export const DEFAULT_BACKGROUND_CPU_SHARE = 0.5;

export interface BackupResult {
  file: string;
  size_bytes: number;
  checksum: string;
  duration_s: number;
  objects: { commit: number; tree: number; blob: number; tag: number };
  repositories: number;
  kind: BackupKind;
  created: string;
  /** where the checkpoint came from */
  source: 'node' | 'store';
  format: ArchiveFormat;
  total_bytes: number;
  files: number;
  frames: number;
  levels: Record<string, number>;
  /** scheduling the archive was written with: "normal", or "idle"/"nice" beside a running node */
  priority: string;
  /** share of the time each archiver thread could run: below 1 when paced beside a running node */
  cpu_share: number;
  /** an existing archive (or, with force, file) of that name was replaced */
  replaced_existing: boolean;
  /** MANIFEST.json as stored in the archive */
  manifest: string;
  /** the base's WAL position (as in MANIFEST.json `wal`), when WAL archiving is on */
  wal?: { timeline: number; segment: number };
}

/** Contents of <dataDir>/last-backup.json (the node's metrics read it). */
export interface LastBackup {
  file: string;
  size_bytes: number;
  created: string;
  kind: BackupKind;
  checksum: string;
}

export function formatForPath(file: string): ArchiveFormat {
  if (file.endsWith('.tar.zst')) return 'tar.zst';
  if (file.endsWith('.tar.gz') || file.endsWith('.tgz')) return 'tar.gz';
  if (file.endsWith('.tar')) return 'tar';
  throw new GutsError('GUTS_INVALID_ARGUMENT', `cannot tell the archive format of ${file}: use a name ending in .tar.zst (recommended), .tar.gz or .tar`, file);
}

/** UTC ISO time without milliseconds: 2025-01-01T02:00:00Z. */
export function isoSeconds(d = new Date()): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

const CLI_CHECKPOINT = /^cli-(\d+)-\d+$/;

/** Removes checkpoints left by CLI runs whose process is gone (kill -9). */
export function removeStaleCheckpoints(dataDir: string): string[] {
  const dir = dataDirLayout(dataDir).checkpoints;
  const removed: string[] = [];
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return removed;
  }
  for (const name of names) {
    const m = CLI_CHECKPOINT.exec(name);
    if (!m || isProcessAlive(Number(m[1]))) continue;
    fs.rmSync(path.join(dir, name), { recursive: true, force: true });
    removed.push(path.join(dir, name));
  }
  return removed;
}

function checkLevel(format: ArchiveFormat, level: number): void {
  const [min, max] = format === 'tar.gz' ? [1, 9] : [1, 19];
  if (format !== 'tar' && (!Number.isInteger(level) || level < min || level > max)) {
    throw new GutsError('GUTS_INVALID_ARGUMENT', `--level for ${format} must be an integer from ${min} to ${max}`);
  }
}

function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new GutsError('GUTS_CANCELLED', 'backup interrupted; no archive was written and the checkpoint was removed');
}

/** Archive entries for a checkpoint dir: db/ and consensus/ and their files, sorted; recorded owner-only (dirs 0700, files 0600) whatever a lax umask made of the store, so that stock tar extracts a private store too. */
function checkpointEntries(cpDir: string, subdirs: string[]): ArchiveEntrySpec[] {
  const entries: ArchiveEntrySpec[] = [];
  const walk = (rel: string) => {
    const abs = path.join(cpDir, rel);
    entries.push({ path: rel, source: abs, type: 'dir', mode: 0o700 });
    const children = fs.readdirSync(abs, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const c of children) {
      const childRel = `${rel}/${c.name}`;
      if (c.isDirectory()) walk(childRel);
      else if (c.isFile()) entries.push({ path: childRel, source: path.join(cpDir, childRel), type: 'file', mode: 0o600 });
      else throw new GutsError('GUTS_INVALID_ARGUMENT', `checkpoint holds ${path.join(cpDir, childRel)}, which is not a regular file`, path.join(cpDir, childRel));
    }
  };
  for (const sub of subdirs) if (fs.existsSync(path.join(cpDir, sub))) walk(sub);
  return entries;
}

/** keys/node.key or config/config.yaml, both 0600 in a 0700 directory. */
function extraEntries(file: string, dir: string, name: string, what: string): ArchiveEntrySpec[] {
  let real: string;
  try {
    real = fs.realpathSync(file);
    if (!fs.statSync(real).isFile()) throw new GutsError('GUTS_INVALID_ARGUMENT', `${what} ${file} is not a regular file`, file);
  } catch (e) {
    if (e instanceof GutsError) throw e;
    throw fsError(e, `cannot read ${what}`, file);
  }
  return [
    { path: dir, source: path.dirname(real), type: 'dir', mode: 0o700 },
    { path: `${dir}/${name}`, source: real, type: 'file', mode: 0o600 },
  ];
}

export interface Checkpoint {
  dir: string;
  info: CheckpointInfo;
  counts: Counts;
  consensus: { blocks: number; finalizedHeight: number };
  source: 'node' | 'store';
  release: () => Promise<void>;
  /** MANIFEST.json `wal`: timeline + first segment of replay (absent without WAL archiving) */
  wal?: { timeline: number; segment: number };
}

/**
 * A checkpoint from the running node's admin socket. With `background`, this
 * process drops to background priority first and reads the counts from the
 * checkpoint itself (a read-only open that replays its WAL copy), so that
 * work is not done in the node at the node's priority.
 */
export async function nodeCheckpoint(
  client: NodeClient,
  which: { db: boolean; consensus: boolean },
  background: boolean,
  cpuShare: number,
): Promise<Checkpoint & { priority: string }> {
  const priority = background ? native.enterBackgroundPriority(cpuShare).cpu : 'normal';
  const cp = await client.checkpoint({ ...which, describe: !background });
  const release = () => client.releaseCheckpoint(cp.id);
  let figures = { counts: cp.counts, consensus: cp.consensus };
  if (!figures.counts || !figures.consensus) {
    try {
      figures = await describeCheckpoint(cp.dir, which);
    } catch (e) {
      await release();
      throw e;
    }
  }
  return { dir: cp.dir, info: cp.info, counts: figures.counts!, consensus: figures.consensus!, source: 'node', release, priority, ...(cp.wal ? { wal: cp.wal } : {}) };
}

/** A checkpoint taken through a store this process opens (or already holds). */
export async function storeCheckpoint(dataDir: string, which: { db: boolean; consensus: boolean }, held?: GutsStore): Promise<Checkpoint> {
  const layout = dataDirLayout(dataDir);
  let store = held;
  if (!store) {
    if (!fs.existsSync(path.join(layout.db, 'CURRENT'))) {
      throw new GutsError('GUTS_NOT_FOUND', `no store in ${dataDir} (missing ${path.join(layout.db, 'CURRENT')})`, dataDir);
    }
    try {
      // No compaction for the few hundred ms the store is open: a pending L0
      // compaction started by this open was cancelled again at close (on the
      // real-files corpus: 118 MB read, 85 ms of CPU beside the archive's, for nothing).
      store = await GutsStore.open(dataDir, { create: false, rocksdbOptions: 'disable_auto_compactions=true' });
    } catch (e) {
      if (errorCode(e) !== 'GUTS_LOCKED') throw e;
      const pid = storeLockHolder(dataDir);
      throw new GutsError(
        'GUTS_LOCKED',
        `store ${dataDir} is locked by ${pid > 0 ? `process ${pid}` : 'another process'} and no node answers on ${layout.socket}; ` +
          'stop that process, or back up through the running node',
        dataDir,
      );
    }
  }
  fs.mkdirSync(layout.checkpoints, { recursive: true, mode: 0o700 });
  const dir = path.join(layout.checkpoints, `cli-${process.pid}-${Date.now()}`);
  const release = async () => fs.rmSync(dir, { recursive: true, force: true });
  try {
    // No node: the archiver's position is its state.json (the next node start tails on from there).
    const walState = readWalState(dataDir);
    const info = await store.native.checkpoint(dir, which);
    const counts = await store.counts();
    const consensus = await store.consensusInfo();
    return { dir, info, counts, consensus, source: 'store', release, ...(walState ? { wal: { timeline: walState.timeline, segment: walState.next_segment } } : {}) };
  } catch (e) {
    await release();
    throw e;
  } finally {
    // The checkpoint is independent of the live store: let go of the lock
    // now, so a node can start while the archive is written.
    if (!held) await store.close();
  }
}

/** The running node records it (its metrics); without a node, last-backup.json (its kind's slot) is written here. */
export async function recordLastBackup(dataDir: string, record: LastBackup, client: NodeClient | null, wal: { timeline: number } | null): Promise<void> {
  if (client) {
    try {
      await client.recordBackup(record, wal);
      return;
    } catch {
      /* the node went away: record it in the file ourselves */
    }
  }
  writeLastBackup(dataDir, record);
  // No node: a base backup of the archiver's timeline clears its note in state.json.
  const s = wal ? readWalState(dataDir) : null;
  if (s && s.timeline === wal!.timeline && s.needs_base_backup) writeWalState(dataDir, { ...s, needs_base_backup: false });
}

/**
 * GUTS_INVALID_ARGUMENT when `p` (an archive or a repository) is or lies inside the
 * data dir it backs up: a backup inside the store it protects is lost with it,
 * and a restore over that store would delete it. Paths are resolved physically
 * (symlinks, `..`, components that do not exist yet).
 */
export function refuseInsideDataDir(what: string, p: string, dataDir: string): void {
  const real = resolveStorePath(p);
  const realDataDir = resolveStorePath(dataDir);
  if (real === realDataDir || real.startsWith(realDataDir + path.sep)) {
    throw new GutsError('GUTS_INVALID_ARGUMENT', `${what} lies inside the data dir ${dataDir}: write backups elsewhere`, p);
  }
}

export async function createBackup(opts: CreateBackupOptions): Promise<BackupResult> {
  const started = process.hrtime.bigint();
  const dataDir = path.resolve(opts.dataDir);
  const streamed = opts.outputFd !== undefined;
  const output = streamed ? opts.output : path.resolve(opts.output);
  const format = formatForPath(output);
  let kind: BackupKind = opts.kind ?? 'full';
  const level = opts.level ?? 3;
  const threads = opts.threads ?? Math.max(1, os.availableParallelism());
  const frameSize = opts.frameSize ?? DEFAULT_FRAME_SIZE;
  checkLevel(format, level);
  if (!Number.isInteger(threads) || threads < 1) throw new GutsError('GUTS_INVALID_ARGUMENT', '--threads must be a positive integer');
  if (!streamed) refuseInsideDataDir(`output ${output}`, output, dataDir);
  const { replaces } = streamed ? { replaces: false } : checkOutput(output, Boolean(opts.force));
  if (!fs.existsSync(dataDir)) throw new GutsError('GUTS_NOT_FOUND', `data dir ${dataDir} does not exist`, dataDir);

  // Optional extra files are checked before any checkpoint is taken.
  const extras: ArchiveEntrySpec[] = [];
  if (opts.keyFile) extras.push(...extraEntries(opts.keyFile, 'keys', 'node.key', 'node key'));
  if (opts.configFile) extras.push(...extraEntries(opts.configFile, 'config', 'config.yaml', 'config file'));

  removeStaleCheckpoints(dataDir);
  throwIfAborted(opts.signal);

  const which = { db: kind !== 'consensus-only', consensus: true };
  const client = opts.store ? null : await connectNode(dataDir);
  // Which path a --hot backup took, said once it succeeded (an error stays the one line on stderr).
  let pathNote = '';
  if (kind === 'hot' && !client && !opts.store) {
    // No node: the checkpoint is taken here from the stopped store. Label the
    // backup by what it is: alerts and restores read "hot" as "taken beside a
    // running node".
    kind = 'full';
    pathNote = `--hot: no node answers on ${dataDirLayout(dataDir).socket}, so this is a direct checkpoint of the stopped store (kind "full", not "hot")`;
  } else if (kind === 'hot' && client) {
    pathNote = `--hot: checkpoint through the running node (process ${client.node.pid}, ${dataDirLayout(dataDir).socket})`;
  }
  let cp: Checkpoint | null = null;
  try {
    let priority = 'normal';
    const background = Boolean(client && opts.backgroundWithNode);
    const cpuShare = background ? Math.min(1, Math.max(0.01, opts.cpuShare ?? DEFAULT_BACKGROUND_CPU_SHARE)) : 1;
    if (client) {
      const n = await nodeCheckpoint(client, which, background, cpuShare);
      priority = n.priority;
      cp = n;
    } else {
      cp = await storeCheckpoint(dataDir, which, opts.store);
    }
    throwIfAborted(opts.signal);

    const created = isoSeconds();
    const rocksdb: Record<string, { sequence: number }> = {};
    if (cp.info.db) rocksdb.db = { sequence: cp.info.db.sequence };
    if (cp.info.consensus) rocksdb.consensus = { sequence: cp.info.consensus.sequence };
    // A consensus-only archive holds no objects: its counts say so (verify compares them).
    const c = which.db ? cp.counts : { commit: 0, tree: 0, blob: 0, tag: 0, repositories: 0 };
    const objects = { commit: c.commit, tree: c.tree, blob: c.blob, tag: c.tag };
    const compression =
      format === 'tar' ? { format: 'none' } : { format: format === 'tar.zst' ? 'zstd' : 'gzip', level, frame_size: frameSize };
    const manifestBase = {
      format: 'guts-backup',
      format_version: 1,
      tool: `guts-store ${VERSION}`,
      created,
      kind,
      source_data_dir: dataDir,
      hostname: os.hostname(),
      rocksdb,
      objects,
      repositories: c.repositories,
      consensus: { blocks: cp.consensus.blocks, finalized_height: cp.consensus.finalizedHeight },
      compression,
      ...(cp.wal
        ? { wal: { timeline: cp.wal.timeline, segment: cp.wal.segment, db_seq: cp.info.db?.sequence ?? null, consensus_seq: cp.info.consensus?.sequence ?? null } }
        : {}),
    };
    const entries = [...checkpointEntries(cp.dir, which.db ? ['db', 'consensus'] : ['consensus']), ...extras];

    const task = native.createArchive({
      output,
      // an existing guts-node archive (or anything, with --force) is replaced
      // once the new one is complete; else the commit refuses to replace
      overwrite: replaces,
      // the sidecar is committed with the archive, under its lock (rotation order: native/archive_writer.cc);
      // a streamed upload sends its sidecar object after the archive object instead
      ...(streamed ? { outputFd: opts.outputFd } : { sidecar: true }),
      format,
      level,
      threads,
      frameSize,
      // beside a running node, around the page cache (native/archive_writer.cc: DirectReader)
      directReads: background,
      entries,
      manifestBase: JSON.stringify(manifestBase, null, 2),
    });
    const onAbort = () => task.cancel();
    opts.signal?.addEventListener('abort', onAbort);
    let result: CreateArchiveResult;
    try {
      opts.onTask?.(task);
      result = await task.promise;
    } catch (e) {
      if (errorCode(e) === 'GUTS_CANCELLED') throwIfAborted({ aborted: true } as AbortSignal);
      throw e;
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }

    const checksum = `sha256:${result.sha256}`;
    const record: LastBackup = { file: output, size_bytes: result.archiveBytes, created, kind, checksum };
    if (!streamed) await recordLastBackup(dataDir, record, client, cp.wal ?? null);
    if (pathNote) opts.log?.(pathNote);

    return {
      file: output,
      size_bytes: result.archiveBytes,
      checksum,
      duration_s: Math.round(Number(process.hrtime.bigint() - started) / 1e6) / 1e3,
      objects,
      repositories: c.repositories,
      kind,
      created,
      source: cp.source,
      format,
      total_bytes: result.totalBytes,
      files: result.files.length,
      frames: result.frames,
      levels: result.levels,
      priority,
      cpu_share: cpuShare,
      replaced_existing: replaces,
      manifest: result.manifest,
      ...(cp.wal ? { wal: cp.wal } : {}),
    };
  } finally {
    try {
      if (cp) await cp.release();
    } finally {
      client?.close();
    }
  }
}
