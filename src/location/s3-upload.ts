// The multipart uploader of S3Location.upload, with memory bounded by design:
//
// - a fixed pool of at most queueSize + 1 part buffers (one being filled,
//   at most queueSize in flight), allocated once and reused: the source
//   (ByteSource) reads straight into them, UploadPart sends them as they are;
// - back-pressure: when every buffer is in flight, the source is not read
//   until a part completed (a pipe from the native writer then fills and
//   blocks the writer);
// - huge archives: the part size doubles at 5,000, 7,500, 8,750 ... parts, so
//   an archive larger than its estimate still fits S3's 10,000 parts (buffers
//   of the old size are dropped as they come back);
// - atomic: CreateMultipartUpload at the first full part (an object smaller
//   than one part is a single PutObject), CompleteMultipartUpload only after
//   the source ended normally; on any error or abort, requests in flight are
//   aborted and awaited (no request still reads a part buffer), then the
//   multipart upload is aborted and the error thrown.
import { GutsError } from '../errors';
import { ByteSource } from './types';

/* eslint-disable @typescript-eslint/no-explicit-any */
type S3Mod = typeof import('@aws-sdk/client-s3');
type Client = InstanceType<S3Mod['S3Client']>;

export const MAX_PARTS = 10_000;

export interface MultipartOptions {
  partSize: number;
  queueSize: number;
  signal?: AbortSignal;
  onProgress?: (bytes: number) => void;
  /** a cancelled upload's error (GUTS_CANCELLED, naming the URL) */
  cancelled: () => GutsError;
  /** filled in as the upload runs (tests, benchmarks) */
  stats?: UploadStats;
}

export interface UploadStats {
  /** part buffers allocated at once, at most (the pool: queueSize + 1) */
  buffers: number;
  /** parts sent (0: one PutObject) */
  parts: number;
  /** UploadPart requests in flight at once, at most */
  inFlight: number;
  /** bytes of part buffers held at once, at most */
  bufferBytes: number;
  /** seconds from the end of the source to the last part stored, and of CompleteMultipartUpload (a server that concatenates the parts spends them here) */
  drainSeconds?: number;
  completeSeconds?: number;
}

/** Whether the part size doubles after this part (5000, 7500, 8750, ...: halfway to the limit each time). */
export function growAt(partNumber: number): boolean {
  let at = MAX_PARTS / 2;
  while (at < MAX_PARTS - 1) {
    if (partNumber === Math.floor(at)) return true;
    at += (MAX_PARTS - at) / 2;
  }
  return false;
}

/** The most bytes 10,000 parts hold when the first is `partSize` (with the doubling of growAt). */
export function capacity(partSize: number): number {
  let size = partSize;
  let total = 0;
  for (let n = 1; n <= MAX_PARTS; n++) {
    total += size;
    if (growAt(n)) size *= 2;
  }
  return total;
}

export async function multipartUpload(
  client: Client,
  mod: S3Mod,
  target: { Bucket: string; Key: string },
  src: ByteSource,
  o: MultipartOptions,
): Promise<number> {
  let partSize = o.partSize;
  const maxBuffers = o.queueSize + 1;
  const free: Buffer[] = [];
  let allocated = 0;
  let held = 0;
  const inflight = new Set<Promise<void>>();
  const parts: Array<{ PartNumber: number; ETag: string }> = [];
  let failure: unknown;
  let uploadId: string | undefined;
  let partNumber = 0;
  let total = 0;
  // requests in flight are aborted with the caller's signal or on the first failure
  const ac = new AbortController();
  const onAbort = () => {
    failure ??= o.cancelled();
    ac.abort();
    src.cancel(failure as Error);
  };
  if (o.signal?.aborted) onAbort();
  o.signal?.addEventListener('abort', onAbort);

  const takeBuffer = async (): Promise<Buffer> => {
    for (;;) {
      if (failure) throw failure;
      const b = free.pop();
      if (b) return b;
      if (allocated < maxBuffers) {
        allocated++;
        held += partSize;
        if (o.stats) {
          o.stats.buffers = Math.max(o.stats.buffers, allocated);
          o.stats.bufferBytes = Math.max(o.stats.bufferBytes, held);
        }
        // allocUnsafeSlow: its own memory, outside Node's pool; pages become
        // resident as the first part fills them and stay for reuse
        return Buffer.allocUnsafeSlow(partSize);
      }
      await Promise.race(inflight);
    }
  };
  const release = (b: Buffer) => {
    if (b.length === partSize) free.push(b);
    else {
      // an old, smaller part size: dropped
      allocated--;
      held -= b.length;
    }
  };
  const sendPart = (buf: Buffer, n: number) => {
    const PartNumber = ++partNumber;
    if (PartNumber > MAX_PARTS) throw new GutsError('GUTS_IO', `more than ${MAX_PARTS} parts`);
    const p: Promise<void> = client
      .send(
        new mod.UploadPartCommand({ ...target, UploadId: uploadId, PartNumber, Body: buf.subarray(0, n), ContentLength: n }),
        { abortSignal: ac.signal as any },
      )
      .then(
        (r) => {
          parts.push({ PartNumber, ETag: r.ETag! });
        },
        (e) => {
          failure ??= e;
          ac.abort();
        },
      )
      .finally(() => {
        inflight.delete(p);
        release(buf);
      });
    inflight.add(p);
    if (o.stats) {
      o.stats.parts = PartNumber;
      o.stats.inFlight = Math.max(o.stats.inFlight, inflight.size);
    }
    if (growAt(PartNumber)) partSize *= 2;
  };

  try {
    for (;;) {
      const buf = await takeBuffer();
      let n = 0;
      while (n < buf.length) {
        const r = await src.read(buf, n, buf.length - n);
        if (failure) {
          release(buf);
          throw failure;
        }
        if (r === 0) break;
        n += r;
        total += r;
        o.onProgress?.(total);
      }
      const last = n < buf.length;
      if (last && partNumber === 0) {
        // the whole object in one buffer: one PutObject, as atomic
        try {
          await client.send(new mod.PutObjectCommand({ ...target, Body: buf.subarray(0, n), ContentLength: n, ContentType: 'application/octet-stream' }), {
            abortSignal: ac.signal as any,
          });
        } finally {
          release(buf);
        }
        return total;
      }
      if (n === 0) {
        release(buf);
        break;
      }
      if (!uploadId) {
        try {
          const r = await client.send(new mod.CreateMultipartUploadCommand({ ...target, ContentType: 'application/octet-stream' }), { abortSignal: ac.signal as any });
          uploadId = r.UploadId;
        } catch (e) {
          release(buf);
          throw e;
        }
      }
      // queueSize parts in flight while the next buffer fills
      while (inflight.size >= o.queueSize) await Promise.race(inflight);
      if (failure) {
        release(buf);
        throw failure;
      }
      sendPart(buf, n);
      if (last) break;
    }
    const ended = process.hrtime.bigint();
    while (inflight.size) await Promise.race(inflight);
    if (failure) throw failure;
    parts.sort((a, b) => a.PartNumber - b.PartNumber);
    const stored = process.hrtime.bigint();
    await client.send(new mod.CompleteMultipartUploadCommand({ ...target, UploadId: uploadId, MultipartUpload: { Parts: parts } }), { abortSignal: ac.signal as any });
    if (o.stats) {
      o.stats.drainSeconds = Number(stored - ended) / 1e9;
      o.stats.completeSeconds = Number(process.hrtime.bigint() - stored) / 1e9;
    }
    return total;
  } catch (e) {
    failure ??= e;
    ac.abort();
    src.cancel(failure as Error);
    // join: no request may still be reading a part buffer
    await Promise.allSettled([...inflight]);
    if (uploadId) {
      try {
        await client.send(new mod.AbortMultipartUploadCommand({ ...target, UploadId: uploadId }));
      } catch {
        // the server went away: only it (or a lifecycle rule) can drop the parts
      }
    }
    throw failure;
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
  }
}
