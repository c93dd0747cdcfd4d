// Archives streamed to and from a location with no local copy:
//
//   create:  native writer --pipe--> location.upload (S3 multipart: fs.read into its part buffers)
//   read:    location.read (ranged GETs) --> Node --pipe--> native reader
//
// The native side writes / reads a pipe (makePipe) with blocking I/O on its
// own threads. For create, the upload reads the pipe's other end with fs.read
// into its preallocated part buffers (PipeSource); for reads, Node holds the
// other end as a non-blocking socket. Backpressure flows both ways and memory
// stays bounded (pipe buffer + the part buffers + the ranged GETs in flight).
// The upload sees the end of its input only once the writer reported
// success: a failed or interrupted archive never completes the multipart
// upload.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { Readable } from 'node:stream';

import { Sidecar } from '../archive';
import { BackupResult, createBackup, CreateBackupOptions, LastBackup, recordLastBackup } from '../backup';
import { errorCode, GutsError } from '../errors';
import { dirSize } from '../fsutil';
import { native } from '../native';
import { dataDirLayout } from '../store';
import { MAX_PARTS } from './s3';

const STREAM_PART_SIZE = 8 << 20;
import { connectNode } from '../node-client';
import { PipeSource } from './byte-source';
import { Location, UploadOptions } from './types';

export const MANIFEST_SUFFIX = '.manifest.json';
export const SIDECAR_SUFFIX = '.sha256';

/**
 * Parts for a streamed archive of unknown final size: 8 MiB, 2 in flight
 * while a third fills (24 MiB of part buffers: the peak RSS target of 200 MB
 * holds with the create's own ~140 MB and the SDK's ~15 MB; more or larger
 * parts measured no faster against one server process), larger only when
 * the data dir's size, an upper bound of the archive, needs them to stay
 * under S3's 10,000 parts (the uploader also doubles the part size past 5,000
 * parts, should the archive outgrow the bound).
 */
export function streamParts(dataDir: string): { partSize: number; queueSize: number } {
  const layout = dataDirLayout(path.resolve(dataDir));
  const bound = dirSize(layout.db) + dirSize(layout.consensus) + (64 << 20);
  const MiB = 1 << 20;
  const partSize = Math.max(STREAM_PART_SIZE, Math.ceil(bound / (MAX_PARTS - 500) / MiB) * MiB);
  return { partSize, queueSize: 2 };
}

/** "<hex>  <name>\n", as sha256sum -c reads it. */
export function sidecarText(sha256: string, key: string): string {
  return `${sha256}  ${path.posix.basename(key)}\n`;
}

export interface LocationBackupOptions extends Omit<CreateBackupOptions, 'output' | 'outputFd'> {
  location: Location;
  key: string;
  /** also called with the upload's byte count */
  onUploadProgress?: (bytes: number) => void;
  /** filled in with the upload's buffer/part maxima and end phases */
  uploadStats?: UploadOptions['stats'];
}

/**
 * backup create straight into a location: the archive, then KEY.sha256 and
 * KEY.manifest.json (MANIFEST.json as stored, for `backup list`), then the
 * last-backup record. Nothing appears under KEY unless the whole archive was
 * written and uploaded.
 */
export async function createBackupAt(opts: LocationBackupOptions): Promise<BackupResult> {
  const { location, key } = opts;
  const url = location.urlOf(key);
  // Rotation by name, as for local files: a guts-node backup under that name
  // (it has a sidecar or manifest beside it) is replaced once the new one is
  // complete; anything else needs --force.
  let replaces = Boolean(opts.force);
  if (!replaces && (await location.stat(key))) {
    const ours = (await location.stat(key + SIDECAR_SUFFIX)) || (await location.stat(key + MANIFEST_SUFFIX));
    if (!ours) throw new GutsError('GUTS_EXISTS', `${url} already exists and is not a guts-node backup (use --force to overwrite)`, url);
    replaces = true;
  }
  const [rfd, wfd] = native.makePipe();
  let writerOwnsFd = false;
  let task: { cancel(): void } | undefined;
  let archiveDone: (err?: Error) => void = () => undefined;
  const archiveOutcome = new Promise<Error | undefined>((resolve) => (archiveDone = resolve));
  // The upload reads the pipe straight into its part buffers. EOF on the pipe
  // means the writer closed it, successfully or not: the upload sees the end
  // only once the writer reported success, else the writer's error. On
  // success, an old sidecar goes before the new archive completes: the pair is
  // old/old, old/none, new/none or new/new, never mismatched.
  const src = new PipeSource(
    rfd,
    async () => {
      const err = await archiveOutcome;
      if (err) throw err;
      if (replaces) await location.delete(key + SIDECAR_SUFFIX);
    },
    // the upload failed: the writer stops (the pipe is drained meanwhile)
    () => task?.cancel(),
  );
  const upload = location.upload(key, src, { signal: opts.signal, overwrite: replaces, onProgress: opts.onUploadProgress, stats: opts.uploadStats, ...streamParts(opts.dataDir) });
  upload.catch(() => src.cancel());
  let result: BackupResult | undefined;
  let archiveErr: unknown;
  try {
    result = await createBackup({
      ...opts,
      output: url,
      outputFd: wfd,
      onTask: (t) => {
        writerOwnsFd = true;
        task = t;
        if (src.cancelled) t.cancel();
        opts.onTask?.(t);
      },
    });
    archiveDone();
  } catch (e) {
    archiveErr = e;
    if (!writerOwnsFd) fs.closeSync(wfd);
    archiveDone(e as Error);
  }
  let uploadErr: unknown;
  await upload.catch((e) => (uploadErr = e));
  // the writer closed its end: read what is left, then close ours
  await src.close();
  // The upload's error names the cause when the store failed (the writer was
  // then cancelled or saw EPIPE); the writer's own error otherwise.
  if (uploadErr && (!archiveErr || uploadErr === archiveErr || /EPIPE/.test(String((archiveErr as Error).message)) || errorCode(archiveErr) === 'GUTS_CANCELLED'))
    throw uploadErr;
  if (archiveErr) throw archiveErr;
  const r = result!;
  await location.put(key + SIDECAR_SUFFIX, sidecarText(r.checksum.replace(/^sha256:/, ''), key), { overwrite: true });
  await location.put(key + MANIFEST_SUFFIX, r.manifest, { overwrite: true });
  const record: LastBackup = { file: url, size_bytes: r.size_bytes, created: r.created, kind: r.kind, checksum: r.checksum };
  const client = await connectNode(path.resolve(opts.dataDir)).catch(() => null);
  try {
    await recordLastBackup(path.resolve(opts.dataDir), record, client, r.wal ?? null);
  } finally {
    client?.close();
  }
  return { ...r, file: url, replaced_existing: replaces };
}

/** An archive read from a location: verify and restore read it through `read`. */
export interface ArchiveSource {
  /** full URL, for messages and reports */
  url: string;
  size: number;
  sidecar: Sidecar | null;
  /** runs `fn` with the read end of a pipe the archive is downloaded into; the download's own failure wins over what the reader saw */
  read<T>(fn: (input: { inputFd: number; inputSize: number }) => Promise<T>): Promise<T>;
}

export function parseSidecar(text: string, file: string): Sidecar {
  const m = /^([0-9a-fA-F]{64})[ \t]+\*?(.+)$/m.exec(text);
  if (!m) return { file, sha256: null, problem: `${path.posix.basename(file)} is not "<sha256>  <name>"` };
  return { file, sha256: m[1].toLowerCase() };
}

export async function archiveSource(location: Location, key: string, opts: { signal?: AbortSignal } = {}): Promise<ArchiveSource> {
  const url = location.urlOf(key);
  const st = await location.stat(key);
  if (!st) throw new GutsError('GUTS_NOT_FOUND', `cannot read backup file ${url}: no such object`, url);
  const text = await location.get(key + SIDECAR_SUFFIX);
  const sidecar = text === null ? null : parseSidecar(text.toString('utf8'), location.urlOf(key + SIDECAR_SUFFIX));
  return {
    url,
    size: st.size,
    sidecar,
    read<T>(fn: (input: { inputFd: number; inputSize: number }) => Promise<T>): Promise<T> {
      return readThroughPipe(() => location.read(key, { signal: opts.signal }), (inputFd) => fn({ inputFd, inputSize: st.size }));
    },
  };
}

/**
 * Runs `fn` (a native reader) on the read end of a pipe that `open()`'s stream
 * is copied into, off the reader's thread. The download's own failure wins over
 * what the reader saw (a truncated stream looks like a damaged file to it); an
 * EPIPE after the reader stopped early is not a download error.
 */
export async function readThroughPipe<T>(open: () => Promise<Readable>, fn: (inputFd: number) => Promise<T>): Promise<T> {
  const [rfd, wfd] = native.makePipe();
  const sock = new net.Socket({ fd: wfd, readable: false, writable: true });
  let downloadErr: unknown;
  let readerDone = false;
  const download = (async () => {
    let body: Readable | undefined;
    try {
      body = await open();
      for await (const chunk of body) {
        if (readerDone) break;
        if (!sock.write(chunk as Buffer)) await new Promise<void>((resolve, reject) => {
          const onErr = (e: Error) => reject(e);
          sock.once('error', onErr);
          sock.once('drain', () => {
            sock.off('error', onErr);
            resolve();
          });
          sock.once('close', () => resolve());
        });
        if (sock.destroyed) break;
      }
    } catch (e) {
      if (!readerDone && (e as NodeJS.ErrnoException).code !== 'EPIPE') downloadErr = e;
    } finally {
      body?.destroy();
      await new Promise<void>((resolve) => sock.end(() => resolve())).catch(() => undefined);
      sock.destroy();
    }
  })();
  sock.on('error', () => undefined); // EPIPE after the reader closed its end: seen above
  let value: T;
  try {
    value = await fn(rfd);
  } catch (e) {
    readerDone = true;
    sock.destroy();
    await download;
    if (downloadErr) throw downloadErr;
    throw e;
  }
  readerDone = true;
  await download;
  if (downloadErr) throw downloadErr;
  return value;
}

/** GUTS_* code of a location error (for step reports). */
export function isNotFound(e: unknown): boolean {
  return errorCode(e) === 'GUTS_NOT_FOUND';
}
