// Backup repository layout (docs/FORMAT.md "Backup repository"): a location
// (local dir or s3://) holding
//
//   config.json                          the repository's format and id (encryption: null)
//   data/<n>_s<session>_<size>.sst.zst   shared SST objects, stored once, named by
//                                        RocksDB's db_session_id + file number + size
//                                        (BackupEngine's kUseDbSessionId naming)
//   data/x<xxh3>_<size>.sst.zst          an SST without a session id: named by content
//   files/<id>/<path>.zst                a snapshot's own small files (MANIFEST, CURRENT,
//                                        OPTIONS, WAL copies)
//   snapshots/<id>.json                  the snapshot manifest, written last
//   locks/<name>.json                    create (shared) and prune (exclusive) locks
//
// Every object is one zstd frame (content size + checksum flags) of one file;
// the manifest records each file's size and XXH3-128 and the object it is in.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { Readable, Transform } from 'node:stream';

import { ManifestFile, Manifest } from '../archive';
import { errorCode, fsError, GutsError } from '../errors';
import { fsyncDir, tempPathFor } from '../fsutil';
import { Location } from '../location';
import { readThroughPipe } from '../location/backup-stream';
import { native, RepoObjectResult } from '../native';

export const REPO_FORMAT = 'guts-repo';
export const SNAPSHOT_FORMAT = 'guts-repo-snapshot';
export const REPO_FORMAT_VERSION = 1;
export const CONFIG_KEY = 'config.json';

export interface RepoConfig {
  format: typeof REPO_FORMAT;
  format_version: number;
  id: string;
  created: string;
  /** null: objects are plain zstd frames. Reserved for a key id + cipher (next step of the roadmap). */
  encryption: null | { scheme: string; key_id: string };
  object_format: 'zstd-frame';
}

export interface SnapshotFile {
  /** path in the data dir: db/000012.sst, consensus/CURRENT */
  path: string;
  size: number;
  mode: number;
  /** seconds */
  mtime: number;
  /** XXH3-128 of the content (canonical hex), as MANIFEST.json of an archive */
  xxh3: string;
  /** key of the object holding it */
  object: string;
  stored_size: number;
  /** a data/ object other snapshots may share */
  shared: boolean;
}

export interface SnapshotManifest {
  format: typeof SNAPSHOT_FORMAT;
  format_version: number;
  id: string;
  tool: string;
  created: string;
  kind: 'full' | 'hot';
  hostname: string;
  source_data_dir: string;
  encryption: null;
  rocksdb: Record<string, { sequence: number }>;
  objects: { commit: number; tree: number; blob: number; tag: number };
  repositories: number;
  consensus: { blocks: number; finalized_height: number };
  compression: { format: 'zstd'; level: number };
  wal?: { timeline: number; segment: number; db_seq: number | null; consensus_seq: number | null };
  files: SnapshotFile[];
  total_bytes: number;
  /** stored size of every object the snapshot references */
  stored_bytes: number;
  /** objects this snapshot added to the repository, and their stored size */
  added_objects: number;
  added_bytes: number;
}

export const snapshotKey = (id: string) => `snapshots/${id}.json`;
export const SNAPSHOT_KEY = /^snapshots\/([0-9]{8}T[0-9]{6}Z-[0-9a-f]{8})\.json$/;
export const ID_RE = /^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$/;

/**
 * `YYYYMMDDTHHMMSSZ-<8 hex>`: the first 3 hex digits are the milliseconds, the
 * other 5 random, so ids sort by creation time also within one second (with a
 * wholly random suffix two snapshots of one second listed, restored as
 * "latest" and kept by --keep-last in a random order).
 */
export function newSnapshotId(d = new Date()): string {
  const ms = d.getUTCMilliseconds().toString(16).padStart(3, '0');
  return `${d.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z')}-${ms}${crypto.randomBytes(3).toString('hex').slice(0, 5)}`;
}

export function sstObjectKey(fileName: string, size: number, sessionId: string): string | null {
  const m = /^(\d+)\.sst$/.exec(fileName);
  if (!m || !/^[0-9A-Za-z]{1,64}$/.test(sessionId)) return null;
  return `data/${Number(m[1])}_s${sessionId}_${size}.sst.zst`;
}

export const contentObjectKey = (xxh3: string, size: number) => `data/x${xxh3}_${size}.sst.zst`;
export const ownObjectKey = (id: string, path: string) => `files/${id}/${path}.zst`;

/** Parses and checks a snapshot manifest; GUTS_REPO_CORRUPT naming `url` when it is not one. */
export function parseSnapshot(text: string, url: string): SnapshotManifest {
  let m: SnapshotManifest;
  try {
    m = JSON.parse(text) as SnapshotManifest;
  } catch (e) {
    throw new GutsError('GUTS_REPO_CORRUPT', `${url}: not JSON (${(e as Error).message})`, url);
  }
  const bad = (why: string) => new GutsError('GUTS_REPO_CORRUPT', `${url}: ${why}`, url);
  if (!m || m.format !== SNAPSHOT_FORMAT) throw bad(`not a ${SNAPSHOT_FORMAT} manifest`);
  if (m.format_version !== REPO_FORMAT_VERSION) throw bad(`format_version ${m.format_version} is not supported (this tool reads ${REPO_FORMAT_VERSION})`);
  if (m.encryption !== null) throw bad('encrypted snapshots are not supported by this version');
  if (!ID_RE.test(m.id) || !Array.isArray(m.files)) throw bad('missing id or files');
  for (const f of m.files) {
    if (
      typeof f.path !== 'string' ||
      !/^(db|consensus)\/[^/]+$/.test(f.path) ||
      !Number.isSafeInteger(f.size) ||
      f.size < 0 ||
      !/^[0-9a-f]{32}$/.test(f.xxh3) ||
      typeof f.object !== 'string' ||
      !/^(data|files)\/[^\s]+\.zst$/.test(f.object) ||
      f.object.split('/').some((p) => p === '..' || p === '.' || p === '')
    )
      throw bad(`invalid file entry ${JSON.stringify(f).slice(0, 200)}`);
  }
  return m;
}

/** The archive MANIFEST.json a snapshot corresponds to (restore checks, PITR, export). */
export function archiveManifestOf(s: SnapshotManifest): Manifest {
  const files: ManifestFile[] = s.files.map((f) => ({ path: f.path, size: f.size, mode: f.mode, mtime: f.mtime, xxh3: f.xxh3 }));
  return {
    format: 'guts-backup',
    format_version: 1,
    tool: s.tool,
    created: s.created,
    kind: s.kind,
    source_data_dir: s.source_data_dir,
    hostname: s.hostname,
    rocksdb: s.rocksdb,
    objects: s.objects,
    repositories: s.repositories,
    consensus: s.consensus,
    compression: { format: 'zstd', level: s.compression.level },
    ...(s.wal ? { wal: s.wal } : {}),
    files,
    total_bytes: s.total_bytes,
  };
}

export async function readConfig(loc: Location): Promise<RepoConfig | null> {
  const buf = await loc.get(CONFIG_KEY);
  if (!buf) return null;
  let c: RepoConfig;
  try {
    c = JSON.parse(buf.toString('utf8')) as RepoConfig;
  } catch {
    throw new GutsError('GUTS_REPO_CORRUPT', `${loc.urlOf(CONFIG_KEY)} is not JSON`, loc.urlOf(CONFIG_KEY));
  }
  if (c?.format !== REPO_FORMAT) throw new GutsError('GUTS_REPO_CORRUPT', `${loc.urlOf(CONFIG_KEY)} is not a ${REPO_FORMAT} config`, loc.urlOf(CONFIG_KEY));
  if (c.format_version !== REPO_FORMAT_VERSION) throw new GutsError('GUTS_REPO_CORRUPT', `${loc.urlOf(CONFIG_KEY)}: format_version ${c.format_version} is not supported`, loc.urlOf(CONFIG_KEY));
  if (c.encryption !== null) throw new GutsError('GUTS_INVALID_ARGUMENT', `${loc.url} is an encrypted repository: not supported by this version`, loc.url);
  return c;
}

/** The repository's config, created on first use. */
export async function ensureConfig(loc: Location, created: string): Promise<RepoConfig> {
  const have = await readConfig(loc);
  if (have) return have;
  const c: RepoConfig = { format: REPO_FORMAT, format_version: REPO_FORMAT_VERSION, id: crypto.randomBytes(16).toString('hex'), created, encryption: null, object_format: 'zstd-frame' };
  try {
    await loc.put(CONFIG_KEY, JSON.stringify(c, null, 2) + '\n');
  } catch (e) {
    if (errorCode(e) !== 'GUTS_EXISTS') throw e;
  }
  return (await readConfig(loc))!;
}

/** Requires an existing repository (list/verify/restore/prune/export never create one). */
export async function requireConfig(loc: Location): Promise<RepoConfig> {
  const c = await readConfig(loc);
  if (!c) throw new GutsError('GUTS_NOT_FOUND', `${loc.url} is not a backup repository (no ${CONFIG_KEY})`, loc.urlOf(CONFIG_KEY));
  return c;
}

export interface SnapshotEntry {
  id: string;
  key: string;
  url: string;
  manifest: SnapshotManifest;
}

/** Every snapshot, oldest first; a damaged manifest throws GUTS_REPO_CORRUPT. */
export async function loadSnapshots(loc: Location): Promise<SnapshotEntry[]> {
  const out: SnapshotEntry[] = [];
  for (const o of await loc.list('snapshots/')) {
    const m = SNAPSHOT_KEY.exec(o.key);
    if (!m) continue;
    const buf = await loc.get(o.key);
    if (!buf) continue; // removed by a prune meanwhile
    out.push({ id: m[1], key: o.key, url: loc.urlOf(o.key), manifest: parseSnapshot(buf.toString('utf8'), loc.urlOf(o.key)) });
  }
  return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** The newest snapshot's manifest (by id, which sorts by time), or null; only its manifest is read. */
export async function latestSnapshot(loc: Location): Promise<SnapshotManifest | null> {
  const keys = (await loc.list('snapshots/')).map((o) => o.key).filter((k) => SNAPSHOT_KEY.test(k)).sort();
  for (let i = keys.length - 1; i >= 0; i--) {
    const buf = await loc.get(keys[i]);
    if (buf) return parseSnapshot(buf.toString('utf8'), loc.urlOf(keys[i]));
  }
  return null;
}

/** `id`, "latest", or a unique prefix of an id. */
export function pickSnapshot(all: SnapshotEntry[], which: string | undefined, url: string): SnapshotEntry {
  if (!all.length) throw new GutsError('GUTS_NOT_FOUND', `${url} holds no snapshot`, url);
  if (!which || which === 'latest') return all[all.length - 1];
  const hits = all.filter((s) => s.id === which || s.id.startsWith(which));
  const exact = hits.find((s) => s.id === which);
  if (exact) return exact;
  if (hits.length === 1) return hits[0];
  throw new GutsError('GUTS_NOT_FOUND', `${url} holds ${hits.length ? 'several snapshots starting with' : 'no snapshot'} ${which}`, url);
}

/**
 * Objects streamed through a pipe at once: each occupies a libuv threadpool
 * thread (the native packer/unpacker, blocked while the pipe is full or
 * empty) while the other end needs the pool too (local file writes, DNS for
 * S3): with every pool thread blocked on a pipe, nothing drains them. Two
 * pool threads stay free.
 */
export function pipeParallelLimit(requested: number): number {
  const pool = Number(process.env.UV_THREADPOOL_SIZE) || 4;
  return Math.max(1, Math.min(requested, pool - 2));
}

/** Runs up to `n` jobs at once; the first failure stops new jobs and is thrown once the running ones ended. */
export async function pool<T>(items: T[], n: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown;
  const worker = async () => {
    while (failed === undefined && next < items.length) {
      const i = next++;
      try {
        await fn(items[i], i);
      } catch (e) {
        if (failed === undefined) failed = e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(n, items.length)) }, worker));
  if (failed !== undefined) throw failed;
}

/**
 * Stores one file as one zstd-frame object: the native packer writes into a
 * pipe the location's upload reads, so memory stays bounded; nothing appears
 * under `key` unless the whole file was packed (a failed pack fails the upload).
 */
export async function putFileObject(loc: Location, key: string, source: string, level: number, signal?: AbortSignal): Promise<RepoObjectResult> {
  const [rfd, wfd] = native.makePipe();
  const sock = new net.Socket({ fd: rfd, readable: true, writable: false });
  let task: ReturnType<typeof native.repoPack>;
  try {
    task = native.repoPack({ source, outputFd: wfd, level });
  } catch (e) {
    fs.closeSync(wfd);
    sock.destroy();
    throw e;
  }
  const packed = task.promise;
  packed.catch(() => undefined);
  const onAbort = () => task.cancel();
  signal?.addEventListener('abort', onAbort);
  const gate = new Transform({
    highWaterMark: 1 << 20,
    transform(chunk: Buffer, _enc, cb) {
      cb(null, chunk);
    },
    flush(cb) {
      packed.then(
        () => cb(),
        (e: Error) => cb(e),
      );
    },
  });
  sock.on('error', (e) => gate.destroy(e));
  gate.on('error', () => undefined);
  sock.pipe(gate);
  try {
    let uploadErr: unknown;
    await loc.upload(key, gate, { overwrite: true, signal }).catch((e) => {
      uploadErr = e;
      sock.destroy(); // unblocks a packer waiting on a full pipe (EPIPE)
    });
    let packErr: unknown;
    const r = await packed.catch((e) => {
      packErr = e;
      return null;
    });
    if (signal?.aborted) throw new GutsError('GUTS_CANCELLED', `interrupted while storing ${loc.urlOf(key)}`);
    // the store's own failure wins over the packer's broken pipe it caused
    if (packErr && !(uploadErr && /EPIPE|broken pipe/i.test(String((packErr as Error).message)))) throw packErr;
    if (uploadErr) throw uploadErr;
    return r!;
  } finally {
    sock.destroy();
    signal?.removeEventListener('abort', onAbort);
  }
}

/**
 * Objects of a local repository, packed by the native worker straight into a
 * hidden temp file beside their final name (no pipe, no stream on the JS
 * thread), fsynced by that worker and renamed into place as each completes.
 * The directories whose entries changed (and the parents of those created)
 * are fsynced once each by `commit()`, not once per object: the caller writes
 * the snapshot manifest only after `commit()`, so every object it references
 * is durable first. A killed run leaves `.<name>.upload-<pid>-<n>-<random>` temp files
 * (collected by prune, as those of uploads) and unreferenced objects.
 */
export class LocalObjectBatch {
  private readonly dirty = new Set<string>();
  private readonly made = new Set<string>();
  private readonly temps = new Set<string>();

  constructor(private readonly loc: Location) {
    if (loc.kind !== 'local') throw new GutsError('GUTS_INTERNAL', `${loc.url} is not a local repository`);
  }

  private mkdirs(dir: string): void {
    if (this.made.has(dir)) return;
    const missing: string[] = [];
    for (let d = dir; !fs.existsSync(d); d = path.dirname(d)) missing.unshift(d);
    for (const d of missing) {
      try {
        fs.mkdirSync(d, { mode: 0o700 });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw fsError(e, 'cannot create directory', d);
      }
      this.dirty.add(path.dirname(d));
    }
    this.made.add(dir);
  }

  /** Packs `source` into the object `key` (replacing one of the same name: same name, same content). */
  async put(key: string, source: string, level: number, signal?: AbortSignal): Promise<RepoObjectResult> {
    const file = this.loc.urlOf(key);
    const dir = path.dirname(file);
    this.mkdirs(dir);
    const tmp = tempPathFor(file, 'upload');
    let fd: number;
    try {
      fd = fs.openSync(tmp, 'wx', 0o600);
    } catch (e) {
      throw fsError(e, 'cannot create', tmp);
    }
    this.temps.add(tmp);
    let task: ReturnType<typeof native.repoPack>;
    try {
      task = native.repoPack({ source, outputFd: fd, level, syncOutput: true, name: tmp });
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
    const onAbort = () => task.cancel();
    signal?.addEventListener('abort', onAbort);
    try {
      const r = await task.promise;
      if (signal?.aborted) throw new GutsError('GUTS_CANCELLED', `interrupted while storing ${file}`);
      try {
        fs.renameSync(tmp, file);
      } catch (e) {
        throw fsError(e, 'cannot move into place', file);
      }
      this.temps.delete(tmp);
      this.dirty.add(dir);
      return r;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Makes every object put so far durable under its name: each changed directory fsynced once. */
  commit(): void {
    for (const d of [...this.dirty].sort((a, b) => b.length - a.length)) {
      try {
        fsyncDir(d);
      } catch (e) {
        throw fsError(e, 'cannot fsync', d);
      }
    }
    this.dirty.clear();
  }

  /** Removes the temp files of objects that did not complete. */
  discard(): void {
    for (const t of this.temps) fs.rmSync(t, { force: true });
    this.temps.clear();
  }
}

/** The content hash of a file (an SST without a session id is named by it). */
export async function hashFile(source: string): Promise<RepoObjectResult> {
  return native.repoPack({ source, hashOnly: true }).promise;
}

/**
 * Reads one object, checks its zstd frame, and returns the content's size and
 * XXH3-128; with `output`, writes the content to that new file (fsynced).
 * A missing object is GUTS_REPO_CORRUPT; so is an undecodable one.
 */
export async function readObject(loc: Location, key: string, opts: { output?: string; maxBytes?: number; signal?: AbortSignal } = {}): Promise<RepoObjectResult> {
  const url = loc.urlOf(key);
  const unpack = async (inputFd: number) => {
    const t = native.repoUnpack({ inputFd, output: opts.output, maxBytes: opts.maxBytes, name: url });
    const onAbort = () => t.cancel();
    opts.signal?.addEventListener('abort', onAbort);
    try {
      return await t.promise;
    } catch (e) {
      if (errorCode(e) === 'GUTS_CORRUPT') throw new GutsError('GUTS_REPO_CORRUPT', (e as Error).message, url);
      throw e;
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }
  };
  if (loc.kind === 'local') {
    let fd: number;
    try {
      fd = fs.openSync(url, 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new GutsError('GUTS_REPO_CORRUPT', `${url}: object missing`, url);
      throw e;
    }
    return unpack(fd);
  }
  let body: Readable;
  try {
    body = await loc.read(key, { signal: opts.signal, parallel: 1 });
  } catch (e) {
    if (errorCode(e) === 'GUTS_NOT_FOUND') throw new GutsError('GUTS_REPO_CORRUPT', `${url}: object missing`, url);
    throw e;
  }
  return readThroughPipe(async () => body, unpack);
}

/** Checks an unpacked object against the manifest's record of the file. */
export function checkObjectResult(loc: Location, f: Pick<SnapshotFile, 'object' | 'size' | 'xxh3' | 'path'>, r: RepoObjectResult): void {
  const url = loc.urlOf(f.object);
  if (r.rawBytes !== f.size) throw new GutsError('GUTS_REPO_CORRUPT', `${url}: holds ${r.rawBytes} bytes, the snapshot records ${f.size} for ${f.path}`, url);
  if (r.xxh3 !== f.xxh3) throw new GutsError('GUTS_REPO_CORRUPT', `${url}: XXH3-128 is ${r.xxh3}, the snapshot records ${f.xxh3} for ${f.path}`, url);
}
