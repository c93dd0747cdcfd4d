// `backup create --repo LOCATION`: a snapshot of a RocksDB checkpoint into a
// backup repository (repo-format.ts). The checkpoint is taken exactly as for
// an archive (through the running node when one serves the data dir). Every
// SST is named by its db_session_id table property + file number + size
// (read from the file's properties block, not its data): one already in the
// repository and recorded by a snapshot is not read at all; a new one is
// streamed once through zstd into its object, its XXH3-128 computed on the
// same pass. The small mutable files go under files/<id>/. The manifest
// snapshots/<id>.json is written last: until then the snapshot does not
// exist, and the objects a killed run left are swept by the next prune.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { BackupKind, isoSeconds, refuseInsideDataDir, LastBackup, nodeCheckpoint, recordLastBackup, removeStaleCheckpoints, storeCheckpoint, DEFAULT_BACKGROUND_CPU_SHARE } from '../backup';
import { GutsError } from '../errors';
import { Location } from '../location';
import { connectNode } from '../node-client';
import { dataDirLayout, GutsStore } from '../store';
import { VERSION } from '../version';
import {
  contentObjectKey,
  ensureConfig,
  hashFile,
  latestSnapshot,
  LocalObjectBatch,
  newSnapshotId,
  ownObjectKey,
  pipeParallelLimit,
  pool,
  putFileObject,
  snapshotKey,
  SnapshotFile,
  SnapshotManifest,
  sstObjectKey,
} from './repo-format';
import { acquireLock } from './repo-lock';
import { native } from '../native';

export interface RepoCreateOptions {
  dataDir: string;
  location: Location;
  /** 'hot' without a running node becomes 'full' (log says so) */
  kind?: 'full' | 'hot';
  /** zstd level of new objects (default 3) */
  level?: number;
  /** objects stored at once (default and at most: libuv pool size - 2, see pipeParallelLimit) */
  parallel?: number;
  backgroundWithNode?: boolean;
  cpuShare?: number;
  signal?: AbortSignal;
  log?: (line: string) => void;
  /** a store this process already holds open (the node itself, tests): checkpointed directly */
  store?: GutsStore;
  /** seconds to wait for a running prune's exclusive lock (default 0: GUTS_REPO_LOCKED at once) */
  lockWait?: number;
}

export interface RepoCreateResult {
  repo: string;
  snapshot: string;
  manifest: string;
  created: string;
  kind: 'full' | 'hot';
  source: 'node' | 'store';
  duration_seconds: number;
  files: number;
  total_bytes: number;
  /** SST files found in the repository already (not read) */
  reused_files: number;
  reused_bytes: number;
  /** objects written by this run and their stored size (what the snapshot cost) */
  added_objects: number;
  added_bytes: number;
  /** raw size of the files those objects hold */
  added_raw_bytes: number;
  stored_bytes: number;
  objects: { commit: number; tree: number; blob: number; tag: number };
  repositories: number;
  wal?: { timeline: number; segment: number };
}

interface CpFile {
  rel: string;
  abs: string;
  size: number;
  mtime: number;
}

function checkpointFiles(cpDir: string): CpFile[] {
  const out: CpFile[] = [];
  for (const sub of ['db', 'consensus']) {
    const dir = path.join(cpDir, sub);
    if (!fs.existsSync(dir)) continue;
    for (const d of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      const abs = path.join(dir, d.name);
      if (!d.isFile()) throw new GutsError('GUTS_INVALID_ARGUMENT', `checkpoint holds ${abs}, which is not a regular file`, abs);
      const st = fs.statSync(abs);
      out.push({ rel: `${sub}/${d.name}`, abs, size: st.size, mtime: Math.floor(st.mtimeMs / 1000) });
    }
  }
  return out;
}

/**
 * A checkpoint of a stopped store. It is taken through a read-only open first: that writes nothing into
 * the store (a read-write open writes a new MANIFEST, OPTIONS file and WAL and flushes the recovered WAL,
 * with their fsyncs: 0.1 s of the 0.3 s an incremental snapshot takes on a 140 MB store) and opens only the
 * tables it reads. A read-only open takes no lock, so it refuses a store whose RocksDB LOCK a live process
 * holds (GutsStore.open); a node that starts meanwhile makes the checkpoint fail (a file it replaced is
 * gone: hard links and copies are checked), never half-succeed. On any failure of that path (for one,
 * a WAL over the checkpoint's copy limit needs a flush, which a read-only instance cannot do) the
 * checkpoint is taken as an archive's is, through a read-write open holding the store's lock.
 */
async function stoppedStoreCheckpoint(dataDir: string, which: { db: boolean; consensus: boolean }): Promise<Awaited<ReturnType<typeof storeCheckpoint>>> {
  // the checkpoint's removal on libuv's pool: it overlaps the manifest's write (createRepoSnapshot)
  const offThread = (cp: Awaited<ReturnType<typeof storeCheckpoint>>) => ({ ...cp, release: () => fs.promises.rm(cp.dir, { recursive: true, force: true }) });
  let ro: GutsStore | null = null;
  try {
    ro = await GutsStore.open(dataDir, { readOnly: true });
  } catch {
    ro = null;
  }
  if (ro) {
    try {
      return offThread(await storeCheckpoint(dataDir, which, ro));
    } catch {
      /* the read-write path below reports what is wrong */
    } finally {
      await ro.close();
    }
  }
  return offThread(await storeCheckpoint(dataDir, which));
}

export async function createRepoSnapshot(opts: RepoCreateOptions): Promise<RepoCreateResult> {
  const started = process.hrtime.bigint();
  const dataDir = path.resolve(opts.dataDir);
  const loc = opts.location;
  const level = opts.level ?? 3;
  if (!Number.isInteger(level) || level < 1 || level > 19) throw new GutsError('GUTS_INVALID_ARGUMENT', '--level for a repository must be an integer from 1 to 19');
  const parallel = pipeParallelLimit(opts.parallel ?? 4);
  if (!fs.existsSync(dataDir)) throw new GutsError('GUTS_NOT_FOUND', `data dir ${dataDir} does not exist`, dataDir);
  if (loc.kind === 'local') refuseInsideDataDir(`repository ${loc.url}`, loc.url, dataDir);
  if (loc.kind === 'local') fs.mkdirSync(loc.url, { recursive: true, mode: 0o700 });
  removeStaleCheckpoints(dataDir);
  const lock = await acquireLock(loc, 'create', { waitSeconds: opts.lockWait, onWait: opts.log, signal: opts.signal });
  const client = opts.store ? null : await connectNode(dataDir);
  let kind: BackupKind = opts.kind ?? 'full';
  let note = '';
  if (kind === 'hot' && !client) {
    kind = 'full';
    note = `--hot: no node answers on ${dataDirLayout(dataDir).socket}, so this is a direct checkpoint of the stopped store (kind "full", not "hot")`;
  } else if (kind === 'hot' && client) note = `--hot: checkpoint through the running node (process ${client.node.pid}, ${dataDirLayout(dataDir).socket})`;
  const which = { db: true, consensus: true };
  let cp: Awaited<ReturnType<typeof storeCheckpoint>> | null = null;
  let released: Promise<void> | null = null;
  // local repository: objects packed straight into their files, directories fsynced once (repo-format.ts)
  const batch = loc.kind === 'local' ? new LocalObjectBatch(loc) : null;
  try {
    const created = isoSeconds();
    // The repository's config, latest manifest and (S3) listing of data/ are read while the checkpoint is
    // taken (all under our create lock; the checkpoint does not depend on them). Whether the objects the
    // latest manifest records still exist with their stored size: a local repository is asked by name
    // (one stat per SST the store holds, whatever the repository's history); S3 lists data/ (one request
    // per 1,000 objects instead of one per SST).
    const listData = async (): Promise<Map<string, number> | null> => (loc.kind === 'local' ? null : new Map((await loc.list('data/')).map((o) => [o.key, o.size])));
    const repoState = ensureConfig(loc, created).then(() => Promise.all([latestSnapshot(loc), listData()]));
    repoState.catch(() => undefined);
    const background = Boolean(client && opts.backgroundWithNode);
    try {
      cp = client ? await nodeCheckpoint(client, which, background, Math.min(1, Math.max(0.01, opts.cpuShare ?? DEFAULT_BACKGROUND_CPU_SHARE))) : opts.store ? await storeCheckpoint(dataDir, which, opts.store) : await stoppedStoreCheckpoint(dataDir, which);
    } finally {
      await repoState.catch(() => undefined);
    }
    if (opts.signal?.aborted) throw new GutsError('GUTS_CANCELLED', 'backup interrupted; no snapshot was written');

    // What the repository already holds: the SSTs the latest snapshot records (with their checksums) that
    // exist with the recorded stored size. Only the latest manifest is read (one GET, whatever the history):
    // an older snapshot's SST that the store still holds is in the latest one too; anything else is
    // stored again under the same name (same name, same content).
    const known = new Map<string, SnapshotFile>();
    const [latest, listed] = await repoState;
    if (latest) for (const f of latest.files) if (f.shared) known.set(f.object, f);
    const present = async (key: string): Promise<number | undefined> => (listed ? listed.get(key) : (await loc.stat(key))?.size);

    const id = newSnapshotId();
    const files = checkpointFiles(cp.dir);
    const ssts = files.filter((f) => /^\d+\.sst$/.test(path.basename(f.rel)));
    const ids = await native.sstIdentity(ssts.map((f) => f.abs));
    const sstKey = new Map<string, string | null>(ssts.map((f, i) => [f.rel, sstObjectKey(path.basename(f.rel), f.size, ids[i].dbSessionId)]));

    const out: SnapshotFile[] = new Array(files.length);
    let reused = 0;
    let reusedBytes = 0;
    let added = 0;
    let addedBytes = 0;
    let addedRaw = 0;
    await pool(files, parallel, async (f, i) => {
      if (opts.signal?.aborted) throw new GutsError('GUTS_CANCELLED', 'backup interrupted; no snapshot was written');
      const shared = sstKey.has(f.rel);
      let key = shared ? sstKey.get(f.rel)! : ownObjectKey(id, f.rel);
      if (shared && !key) {
        // no session id: named by content (one extra read of this file)
        const h = await hashFile(f.abs);
        key = contentObjectKey(h.xxh3, f.size);
      }
      const k = known.get(key);
      if (shared && k && k.size === f.size && (await present(key)) === k.stored_size) {
        out[i] = { path: f.rel, size: f.size, mode: 0o600, mtime: f.mtime, xxh3: k.xxh3, object: key, stored_size: k.stored_size, shared: true };
        reused++;
        reusedBytes += f.size;
        return;
      }
      const r = batch ? await batch.put(key, f.abs, level, opts.signal) : await putFileObject(loc, key, f.abs, level, opts.signal);
      if (r.rawBytes !== f.size) throw new GutsError('GUTS_IO', `${f.abs} changed size while it was stored (${f.size} -> ${r.rawBytes})`, f.abs);
      out[i] = { path: f.rel, size: f.size, mode: 0o600, mtime: f.mtime, xxh3: r.xxh3, object: key, stored_size: r.storedBytes, shared };
      added++;
      addedBytes += r.storedBytes;
      addedRaw += r.rawBytes;
    });

    // every file is stored: the checkpoint goes while the manifest is written
    const releasing = cp.release();
    releasing.catch(() => undefined);
    released = releasing;

    const c = cp.counts;
    const objects = { commit: c.commit, tree: c.tree, blob: c.blob, tag: c.tag };
    const rocksdb: Record<string, { sequence: number }> = {};
    if (cp.info.db) rocksdb.db = { sequence: cp.info.db.sequence };
    if (cp.info.consensus) rocksdb.consensus = { sequence: cp.info.consensus.sequence };
    const manifest: SnapshotManifest = {
      format: 'guts-repo-snapshot',
      format_version: 1,
      id,
      tool: `guts-store ${VERSION}`,
      created,
      kind: kind as 'full' | 'hot',
      hostname: os.hostname(),
      source_data_dir: dataDir,
      encryption: null,
      rocksdb,
      objects,
      repositories: c.repositories,
      consensus: { blocks: cp.consensus.blocks, finalized_height: cp.consensus.finalizedHeight },
      compression: { format: 'zstd', level },
      ...(cp.wal ? { wal: { timeline: cp.wal.timeline, segment: cp.wal.segment, db_seq: cp.info.db?.sequence ?? null, consensus_seq: cp.info.consensus?.sequence ?? null } } : {}),
      files: out,
      total_bytes: out.reduce((s, f) => s + f.size, 0),
      stored_bytes: out.reduce((s, f) => s + f.stored_size, 0),
      added_objects: added,
      added_bytes: addedBytes,
    };
    const text = JSON.stringify(manifest, null, 1) + '\n';
    if (opts.signal?.aborted) throw new GutsError('GUTS_CANCELLED', 'backup interrupted; no snapshot was written');
    // every object the manifest references is durable before the manifest is written
    batch?.commit();
    await loc.put(snapshotKey(id), text);

    const record: LastBackup = { file: `${loc.url.replace(/\/$/, '')}#${id}`, size_bytes: addedBytes, created, kind, checksum: '' };
    await recordLastBackup(dataDir, record, client, cp.wal ?? null).catch(() => undefined);
    if (note) opts.log?.(note);
    return {
      repo: loc.url,
      snapshot: id,
      manifest: loc.urlOf(snapshotKey(id)),
      created,
      kind: kind as 'full' | 'hot',
      source: cp.source,
      duration_seconds: Math.round(Number(process.hrtime.bigint() - started) / 1e6) / 1e3,
      files: out.length,
      total_bytes: manifest.total_bytes,
      reused_files: reused,
      reused_bytes: reusedBytes,
      added_objects: added,
      added_bytes: addedBytes,
      added_raw_bytes: addedRaw,
      stored_bytes: manifest.stored_bytes,
      objects,
      repositories: c.repositories,
      ...(cp.wal ? { wal: cp.wal } : {}),
    };
  } finally {
    batch?.discard();
    try {
      if (released) await released;
      else if (cp) await cp.release();
    } finally {
      client?.close();
      await lock.release().catch(() => undefined);
    }
  }
}
