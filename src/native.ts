// Loads the addon (build/Release/guts_native.node) and gives it types.
// Everything heavy runs on libuv worker threads and returns promises; long
// jobs return a TaskHandle whose progress is polled (no cross-thread callbacks).
import * as path from 'node:path';

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
  /** absolute source path on disk */
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
  output: string;
  format: ArchiveFormat;
  level: number;
  threads: number;
  /** bytes of tar stream per independent zstd frame / gzip member */
  frameSize?: number;
  entries: ArchiveEntrySpec[];
  /** JSON object text; the writer appends "files" and "total_bytes" and stores it as MANIFEST.json */
  manifestBase: string;
  /** extra small files written verbatim before MANIFEST.json (e.g. keys/node.key), mode given */
  extraFiles?: Array<{ path: string; data: Buffer; mode: number }>;
}

export interface CreateArchiveResult {
  archiveBytes: number;
  tarBytes: number;
  sha256: string;
  frames: number;
  files: ArchivedFile[];
  manifest: string;
}

// ---- archive reader (native/archive_reader.cc) ----
export interface ReadArchiveOptions {
  path: string;
  /** decoder threads for zstd frames (default: number of CPUs) */
  threads?: number;
  /** extract into this (existing, empty) staging dir; absent = verify only */
  extractTo?: string;
  /** fsync extracted files and dirs */
  fsync?: boolean;
  /** compute SHA-256 of the archive file on the same pass */
  sha256?: boolean;
  /** stop at the first problem (restore) instead of collecting all (verify) */
  failFast?: boolean;
  /** archive paths (<= 1 MiB each) returned in `memory` instead of being written */
  inMemory?: string[];
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

// ---- object verifier (native/object_verifier.cc) ----
export interface ObjectProblem {
  kind: 'CORRUPT' | 'MISMATCH' | 'ERROR';
  id?: string;
  repositories?: string[];
  message: string;
}

export interface VerifyObjectsResult {
  objects: number;
  bytes: number;
  counts: Counts;
  stored: Counts;
  refs: number;
  problems: ObjectProblem[];
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
  verifyObjects(store: NativeStore, options: { threads: number; listAffected: boolean }): TaskHandle<VerifyObjectsResult>;
  verifyChecksums(store: NativeStore): Promise<{ files: number; problems: ObjectProblem[] }>;
}

function load(): NativeAddon {
  const root = path.resolve(__dirname, '..', '..');
  const candidates = [path.join(root, 'build', 'Release', 'guts_native.node'), path.resolve(__dirname, '..', 'build', 'Release', 'guts_native.node')];
  let lastErr: unknown;
  for (const c of candidates) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      return require(c) as NativeAddon;
    } catch (e) {
      lastErr = e;
      if ((e as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw e;
    }
  }
  throw new Error(`guts-store native addon not built (run npm ci or npm run build:native): ${String(lastErr)}`);
}

export const native: NativeAddon = load();

export const ObjectType = { commit: 1, tree: 2, blob: 3, tag: 4 } as const;
export type ObjectTypeName = keyof typeof ObjectType;
export const TypeNames: Record<number, ObjectTypeName> = { 1: 'commit', 2: 'tree', 3: 'blob', 4: 'tag' };
