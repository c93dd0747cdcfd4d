// Loads the addon (build/Release/guts_native.node) and gives it types.
// Everything heavy runs on libuv worker threads and returns promises; long
// jobs return a TaskHandle whose progress is polled (no cross-thread callbacks).
import * as path from 'node:path';

import { PACKAGE_ROOT } from './paths';

export interface Counts {
  commit: number;
  tree: number;
  blob: number;
  tag: number;
  repositories: number;
}

export interface StoredObject {
  id: Buffer;
  type: number;
  data: Buffer;
}

export interface RefUpdate {
  name: string;
  target?: Buffer;
  symbolic?: string;
  delete?: boolean;
}

export interface RefValue {
  name: string;
  target?: Buffer;
  symbolic?: string;
}

export interface CheckpointInfo {
  db?: { sequence: number };
  consensus?: { sequence: number };
}

export interface NativeStore {
  open(): Promise<void>;
  close(): Promise<void>;
  isOpen(): boolean;
  putObjects(repo: string, types: Uint8Array, bodies: Buffer[]): Promise<{ ids: Buffer; added: number }>;
  getObject(id: Buffer): Promise<StoredObject | null>;
  hasObjects(ids: Buffer[]): Promise<boolean[]>;
  scanObjects(repo: string, after: Buffer | null, limit: number): Promise<StoredObject[]>;
  putRepo(repo: string, metaJson: string): Promise<boolean>;
  listRepos(): Promise<Array<{ name: string; meta: string }>>;
  updateRefs(repo: string, updates: RefUpdate[]): Promise<void>;
  getRefs(repo: string): Promise<RefValue[]>;
  counts(): Promise<Counts>;
  putBlocks(heights: number[], blocks: Buffer[], finalized: number): Promise<void>;
  getBlock(height: number): Promise<Buffer | null>;
  consensusInfo(): Promise<{ finalizedHeight: number; blocks: number }>;
  flush(): Promise<void>;
  checkpoint(dir: string, which: { db: boolean; consensus: boolean }): Promise<CheckpointInfo>;
  sequences(): { db: number; consensus: number };
}

export interface StoreOptions {
  readOnly?: boolean;
  create?: boolean;
  db?: boolean;
  consensus?: boolean;
  /** staging store of a point-in-time restore: walApply writes without a WAL; flush() before closing (native/wal_reader.cc TuneForReplay) */
  replay?: boolean;
  /**
   * SST format of what this open writes (native/store_options.h): 'default' (LZ4 above, ZSTD at the
   * bottommost level) or 'snappy' (the format before issue 14; tests and benchmarks build old stores with it).
   * Every store opens with either.
   */
  format?: 'default' | 'snappy';
  /** a RocksDB Options string (DB and column family options) applied last (benchmarks compare tunings with it) */
  rocksdbOptions?: string;
}

/** Live SST files of both RocksDB instances; compression: lower-case RocksDB name ("lz4", "snappy", "zstd", "none") -> bytes */
export interface SstSummary {
  files: number;
  bytes: number;
  compression: Record<string, number>;
  /** sstSummary only: table properties summed over the SSTs (compressed data/index/filter blocks, raw key/value bytes) */
  parts?: { data: number; index: number; filter: number; rawKey: number; rawValue: number; entries: number };
}

export interface Progress {
  done: number;
  total: number;
  files: number;
}

export interface TaskHandle<T> {
  promise: Promise<T>;
  progress(): Progress;
  cancel(): void;
}

// ---- archive writer (native/archive_writer.cc) — see docs/FORMAT.md ----
export type ArchiveFormat = 'tar.zst' | 'tar.gz' | 'tar';

export interface ArchiveEntrySpec {
  /** path inside the archive, relative, '/'-separated; directories end without '/' */
  path: string;
  /** absolute source path on disk (symlinks are refused) */
  source: string;
  /** 'file' or 'dir' */
  type: 'file' | 'dir';
  /** mode to record (defaults to the source's mode & 0o7777) */
  mode?: number;
}

export interface ArchivedFile {
  path: string;
  size: number;
  mode: number;
  mtime: number;
  xxh3: string;
}

export interface CreateArchiveOptions {
  /** final archive path; written as `partial`, then renamed (link()ed unless overwrite) */
  output: string;
  /** default `${output}.partial`: created O_EXCL 0600 and flock()ed while written; a stale one is removed */
  partial?: string;
  /** replace an existing output (else GUTS_EXISTS) */
  overwrite?: boolean;
  /**
   * also commit `${output}.sha256` ("<sha256>  <basename>\n", 0600) under the
   * partial's lock, in an order where a crash leaves the old pair, the new pair
   * or an archive without a sidecar, never a mismatched pair (PartialFile::Commit)
   */
  sidecar?: boolean;
  /** write to this descriptor (a pipe to an upload; owned and closed by the writer) instead of a file; `output` only names it */
  outputFd?: number;
  format: ArchiveFormat;
  /** requested level (zstd -7..22, gzip 1..9; ignored for tar); zstd 1-3: parameters per chunk, chunks that do not compress stored raw; gzip chunks that barely compress get a faster one */
  level: number;
  /** compression worker threads */
  threads: number;
  /** bytes of tar stream per independent zstd frame / gzip member (64 KiB..64 MiB, default 4 MiB) */
  frameSize?: number;
  /** read source files with O_DIRECT where the file system allows it (beside a running node: not through the page cache) */
  directReads?: boolean;
  entries: ArchiveEntrySpec[];
  /** JSON object text; the writer appends "files" and "total_bytes" and stores it as MANIFEST.json */
  manifestBase: string;
  /** small in-memory files written after `entries` (mode default 0600), listed in GUTS-INDEX and files */
  extraFiles?: Array<{ path: string; data: Buffer; mode?: number }>;
}

export interface CreateArchiveResult {
  output: string;
  /** bytes of the archive file */
  archiveBytes: number;
  /** bytes of the uncompressed tar stream */
  tarBytes: number;
  /** sum of the archived files' sizes (MANIFEST total_bytes) */
  totalBytes: number;
  /** SHA-256 (hex) of the archive file */
  sha256: string;
  /** zstd frames / gzip members (tar: chunks written) */
  frames: number;
  /** frames per level actually used, e.g. { "2": 40, "3": 2 } (gzip also "huffman-only"; tar: {}) */
  levels: Record<string, number>;
  files: ArchivedFile[];
  /** the MANIFEST.json text as stored */
  manifest: string;
}

// ---- archive reader (native/archive_reader.cc) ----
export interface ReadArchiveOptions {
  path: string;
  /** read the archive from this descriptor (a pipe from a download; owned and closed by the reader); `path` then only names it */
  inputFd?: number;
  /** expected bytes of the stream (progress) */
  inputSize?: number;
  /** decoder threads for zstd frames (default: number of CPUs) */
  threads?: number;
  /** extract into this (existing, empty) staging dir; absent = verify only */
  extractTo?: string;
  /** fsync extracted files and dirs */
  fsync?: boolean;
  /** compute SHA-256 of the archive file on the same pass */
  sha256?: boolean;
  /** with sha256, when the caller checks it against a sidecar: skip zstd's per-frame XXH64 (every byte is covered by the SHA-256) */
  skipFrameChecksums?: boolean;
  /** stop at the first problem (restore) instead of collecting all (verify) */
  failFast?: boolean;
  /** archive paths (<= 1 MiB each) returned in `memory` instead of being written */
  inMemory?: string[];
  /** file patterns a backup may hold ('#' = digits; src/archive-layout.ts); [] = no layout check */
  layout?: string[];
}

export interface ArchiveProblem {
  /** archive path the problem is about; '' = the archive itself */
  path: string;
  code: string;
  message: string;
}

export interface ReadEntry {
  path: string;
  type: 'file' | 'dir';
  size: number;
  mode: number;
  mtime: number;
  /** XXH3-128, canonical hex; '' when damaged */
  xxh3: string;
  /** data lost or cut short (already in problems) */
  damaged?: boolean;
}

export interface ReadArchiveResult {
  format: ArchiveFormat;
  archiveBytes: number;
  /** decompressed tar bytes */
  tarBytes: number;
  /** zstd frames / gzip members seen; parallel = decoded by the pool, streamed = sequential fallback */
  frames: number;
  parallelFrames: number;
  streamedFrames: number;
  sha256?: string;
  index: string | null;
  manifest: string | null;
  /** regular files (not GUTS-INDEX / MANIFEST.json) and directories, in archive order */
  entries: ReadEntry[];
  problems: ArchiveProblem[];
  memory: Record<string, Buffer>;
}

// ---- background priority (native/priority.cc) ----

export interface BackgroundPriority {
  threads: number;
  cpu: 'idle' | 'nice' | 'unchanged';
  ioIdle: boolean;
}

// ---- object verifier (native/object_verifier.cc) ----
export interface ObjectProblem {
  kind: 'CORRUPT' | 'MISMATCH' | 'ERROR';
  /** hex object id when the problem is about one object */
  id?: string;
  /** repositories holding the object / owning the ref (may be empty) */
  repositories: string[];
  /** the repositories concerned cannot be told (e.g. the membership index is unreadable): every one may be affected */
  repositoriesUnknown?: boolean;
  /** the problem line without its kind and repositories */
  message: string;
}

export interface VerifyObjectsResult {
  objects: number;
  /** object body bytes re-hashed */
  bytes: number;
  /** recounted (repositories = repository records found) */
  counts: Counts;
  /** stored in meta */
  stored: Counts;
  refs: number;
  problems: ObjectProblem[];
  /** problems beyond the cap (10,000), counted only */
  problemsDropped: number;
  /** sorted repositories named by any problem */
  affected: string[];
}

export interface VerifyChecksumsResult {
  /** live SST files checked (db/ and consensus/) */
  files: number;
  bytes: number;
  problems: ObjectProblem[];
}

// ---- WAL archiving (native/wal_reader.cc, native/wal_codec.cc) — docs/FORMAT.md "WAL segments" ----
export type WalDbName = 'db' | 'consensus';

export interface WalTailBatch {
  /** sequence of the batch's first key */
  seq: number;
  /** keys in the batch (sequences used) */
  count: number;
  /** commit wall time, microseconds since the epoch (0: the batch carries none) */
  timeUs: number;
  /** restore-point name when the batch is a `wal mark` */
  mark?: string;
  /** the RocksDB WriteBatch representation (header: fixed64 seq, fixed32 count) */
  data: Buffer;
}

export interface WalTailResult {
  batches: WalTailBatch[];
  /** the store's last committed sequence when asked */
  latest: number;
  /** continuity broken: `expected` is gone; the log continues at `found` (0: nothing) */
  gap: { expected: number; found: number } | null;
}

export type RawColumnFamily = 'objects' | 'refs' | 'repos' | 'meta' | 'consensus';

export interface RepoObjectResult {
  rawBytes: number;
  storedBytes: number;
  /** XXH3-128 of the content, 32 hex */
  xxh3: string;
}

export interface NativeAddon {
  Store: new (dataDir: string, options?: StoreOptions) => NativeStore;
  versions: { rocksdb: string; zstd: string; xxhash: string; napi: number };
  gitHash(type: number, body: Buffer): Buffer;
  sha256File(path: string): Promise<string>;
  lockHolder(path: string): number;
  renameExchange(a: string, b: string): void;
  fsyncPath(path: string): void;
  createArchive(options: CreateArchiveOptions): TaskHandle<CreateArchiveResult>;
  readArchive(options: ReadArchiveOptions): TaskHandle<ReadArchiveResult>;
  /** [readFd, writeFd] of a new close-on-exec pipe (1 MiB buffer where allowed) */
  makePipe(): [number, number];
  verifyObjects(store: NativeStore, options: { threads: number; listAffected: boolean }): TaskHandle<VerifyObjectsResult>;
  /** skipObjects: leave out the objects CF's SSTs (verifyObjects reads every block of them, checksummed) */
  verifyChecksums(store: NativeStore, options?: { threads: number; skipObjects?: boolean }): Promise<VerifyChecksumsResult>;
  /**
   * every thread of this process (and those it starts later): SCHED_IDLE CPU (else nice 19) and idle I/O class;
   * cpuShare in (0, 1) also paces the archiver threads to run at most that share of the time (native/priority.cc)
   */
  enterBackgroundPriority(cpuShare?: number): BackgroundPriority;
  /** committed batches from `from` on, checked for continuity (never skips silently) */
  walTail(store: NativeStore, which: WalDbName, from: number, limits?: { maxBytes?: number; maxBatches?: number }): Promise<WalTailResult>;
  /** the store's WAL files, oldest first (live ones in the store dir, obsolete ones kept in its archive/) */
  walFiles(store: NativeStore, which: WalDbName): Promise<Array<{ path: string; logNumber: number; startSeq: number; bytes: number; archived: boolean }>>;
  /** replays archived batches in order; skips those already in the store, GUTS_CORRUPT on a gap; syncs the WAL (a replay store: no WAL, flush() after) */
  walApply(store: NativeStore, which: WalDbName, batches: Buffer[]): Promise<{ applied: number; skipped: number; latest: number }>;
  /** null when an archived WriteBatch can be applied to that store (records parse, count matches, column families exist), else why not; synchronous */
  walCheckBatch(which: WalDbName, data: Buffer): string | null;
  /** walCheckBatch for every batch of a segment, on a worker (dbs: 0 db, 1 consensus, one per batch): the first bad one, or null */
  walCheckBatches(dbs: Uint8Array, batches: Buffer[]): Promise<{ index: number; why: string } | null>;
  /** named restore point: one db batch (meta key wal/mark/NAME + mark LogData) */
  walMark(store: NativeStore, name: string): Promise<{ seq: number; timeUs: number }>;
  /** a whole WAL segment file from its 128-byte header and the records' bytes (joined, compressed, sizes filled in, SHA-256 trailer) on a worker */
  walSeal(header: Buffer, parts: Buffer[], level: number): Promise<{ file: Buffer; checksum: string }>;
  /** one zstd frame (content size + checksum) on a worker thread */
  walCompress(raw: Buffer, level: number): Promise<Buffer>;
  /** GUTS_CORRUPT unless exactly one valid frame of at most maxBytes */
  walDecompress(compressed: Buffer, maxBytes: number): Promise<Buffer>;
  /** backup repository (native/repo_object.h): a file -> one zstd frame into outputFd (closed by the worker), with its XXH3-128 */
  repoPack(o: { source: string; outputFd?: number; level?: number; hashOnly?: boolean; syncOutput?: boolean; name?: string }): TaskHandle<RepoObjectResult>;
  /** a repository object from inputFd (closed by the worker), checked, optionally written to the new file `output` */
  repoUnpack(o: { inputFd: number; output?: string; maxBytes?: number; name?: string }): TaskHandle<RepoObjectResult>;
  /** db_session_id / db_id table properties of SST files */
  sstIdentity(paths: string[]): Promise<Array<{ dbSessionId: string; dbId: string }>>;
  /** rewrites every SST with the store's options (bottommost level forced); progress per column family */
  compactStore(store: NativeStore): TaskHandle<{ before: SstSummary; after: SstSummary; columnFamilies: number }>;
  sstSummary(store: NativeStore): Promise<SstSummary>;
  /** flushes and compactions running or pending in both RocksDB instances (synchronous; benchmarks wait for 0) */
  backgroundWork(store: NativeStore): number;
  /** compression types this build of RocksDB supports, sorted ("lz4", "snappy", "zstd") */
  compressions: string[];
  /** test hook: present only when GUTS_TEST_HOOKS=1 at load; verifyObjects without re-hashing (the bench's decode floor) */
  debugDecodeObjects?(store: NativeStore, options: { threads: number }): TaskHandle<VerifyObjectsResult>;
  /** test hook: present only when GUTS_TEST_HOOKS=1 at load; value null deletes */
  debugPutRaw?(store: NativeStore, cf: RawColumnFamily, key: Buffer, value: Buffer | null): Promise<void>;
  /** test hook: present only when GUTS_TEST_HOOKS=1 at load; one gzip member of the fast encoder (native/deflate_fast.h) */
  debugGzipMember?(data: Buffer, tier: 'stored' | 'huffman' | 'fast'): Buffer;
}

function load(): NativeAddon {
  // GUTS_NATIVE_ADDON: a developer's instrumented build of the same addon
  // (fuzz/sanitize.sh builds one with ASan or TSan).
  const file = process.env.GUTS_NATIVE_ADDON || path.join(PACKAGE_ROOT, 'build', 'Release', 'guts_native.node');
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(file) as NativeAddon;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw e;
    throw new Error(`guts-store native addon not built: ${file} is missing (run npm ci, or npm run build:native)`);
  }
}

export const native: NativeAddon = load();

export const ObjectType = { commit: 1, tree: 2, blob: 3, tag: 4 } as const;
export type ObjectTypeName = keyof typeof ObjectType;
export const TypeNames: Record<number, ObjectTypeName> = { 1: 'commit', 2: 'tree', 3: 'blob', 4: 'tag' };
