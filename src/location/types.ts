// A backup location: a local directory or an S3-compatible bucket prefix
// (src/location/index.ts: openLocation). Keys are relative, '/'-separated
// names under the location ("guts-20250101-020000.tar.zst", "wal/000001.log").
//
// The contract every implementation keeps:
// - upload(): nothing is visible under the key until the source stream ended
//   normally and the write completed; if the source errors, the signal aborts
//   or the store fails, the partial data is discarded (a local temp file
//   removed, an S3 multipart upload aborted) and the error is thrown.
// - read(): a stream of the object's bytes, optionally a byte range.
// - errors are GutsErrors naming the full URL/path and the cause, never a
//   credential.
import { Readable } from 'node:stream';

export interface ObjectInfo {
  /** key relative to the location */
  key: string;
  size: number;
  mtime: Date;
}

/**
 * A producer that fills the consumer's buffers (no allocation per read):
 * src/location/byte-source.ts. An upload accepts one where it accepts a
 * Readable.
 */
export interface ByteSource {
  readonly kind: 'bytes';
  /** places up to `length` bytes at buf[offset..]; resolves to their count, 0 at the normal end; rejects when the producer failed */
  read(buf: Buffer, offset: number, length: number): Promise<number>;
  /** the consumer gave up (the upload failed or was aborted): the producer stops */
  cancel(reason: Error): void;
}

export interface UploadOptions {
  /** aborting discards the upload (GUTS_CANCELLED) */
  signal?: AbortSignal;
  /** replace an existing object (default: refuse with GUTS_EXISTS) */
  overwrite?: boolean;
  /** called with the number of bytes accepted so far */
  onProgress?: (bytes: number) => void;
  /** S3: bytes per part (default 8 MiB, at least 5 MiB) and parts in flight (default 4): the upload holds (queueSize + 1) part buffers, preallocated and reused */
  partSize?: number;
  queueSize?: number;
  /** S3: filled in with what the upload held (part buffers, parts, requests in flight) */
  stats?: import('./s3-upload').UploadStats;
}

export interface ReadOptions {
  /** first byte (inclusive) */
  start?: number;
  /** last byte (inclusive) */
  end?: number;
  /** S3: ranged GETs in flight at once for a whole-object read (default 4; 1 = one GET) */
  parallel?: number;
  signal?: AbortSignal;
}

export interface Location {
  readonly kind: 'local' | 's3';
  /** the location itself: an absolute directory path or s3://bucket/prefix/ */
  readonly url: string;
  /** full path or URL of a key, for messages and --json */
  urlOf(key: string): string;
  /** streams `source` to `key`, atomically (see above); resolves to the bytes written */
  upload(key: string, source: Readable | ByteSource, opts?: UploadOptions): Promise<number>;
  /** a small object, written atomically (sidecars, manifests) */
  put(key: string, data: Buffer | string, opts?: { overwrite?: boolean }): Promise<void>;
  read(key: string, opts?: ReadOptions): Promise<Readable>;
  /** a small object's bytes, or null when it does not exist */
  get(key: string): Promise<Buffer | null>;
  /** null when absent */
  stat(key: string): Promise<ObjectInfo | null>;
  /** every object under the location whose key starts with prefix, sorted by key */
  list(prefix?: string): Promise<ObjectInfo[]>;
  /** removes an object; absent is fine */
  delete(key: string): Promise<void>;
  close(): void;
}
