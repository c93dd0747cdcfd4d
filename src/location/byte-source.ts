// Byte sources: producers that fill the consumer's own buffers, so a
// multipart upload reads into its preallocated part buffers with no
// allocation per read (src/location/s3-upload.ts).
//
// - readableSource(stream): any Readable (a file, a test's generator), its
//   chunks copied into the caller's buffer;
// - PipeSource: the read end of a native pipe (makePipe: blocking), read with
//   fs.read straight into the caller's buffer on the thread pool. Closing is
//   joined: close() waits for a read in progress and drains the pipe to EOF
//   (the writer then never blocks on a full pipe) before the fd is released.
import * as fs from 'node:fs';
import { Readable } from 'node:stream';

import { ByteSource } from './types';

export function isByteSource(s: unknown): s is ByteSource {
  return typeof s === 'object' && s !== null && (s as ByteSource).kind === 'bytes';
}

/** A Readable as a ByteSource (its errors and destruction reject read()). */
export function readableSource(stream: Readable): ByteSource {
  const it = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer | string>;
  let chunk: Buffer | null = null;
  let off = 0;
  let ended = false;
  return {
    kind: 'bytes',
    async read(buf, offset, length) {
      if (length <= 0) return 0;
      if (!chunk || off >= chunk.length) {
        if (ended) return 0;
        const r = await it.next();
        if (r.done) {
          ended = true;
          // a destroyed stream ends its iterator without an error; that is not an end
          const err = (stream as Readable & { errored?: Error | null }).errored;
          if (err) throw err;
          if (stream.destroyed && !stream.readableEnded) throw new Error('the source stream was destroyed before its end');
          return 0;
        }
        chunk = typeof r.value === 'string' ? Buffer.from(r.value) : r.value;
        off = 0;
      }
      const n = Math.min(length, chunk.length - off);
      chunk.copy(buf, offset, off, off + n);
      off += n;
      return n;
    },
    cancel() {
      // the consumer gave up: nobody reads the stream's error any more
      stream.on('error', () => undefined);
      if (!stream.destroyed) stream.destroy();
    },
  };
}

function fsRead(fd: number, buf: Buffer, offset: number, length: number): Promise<number> {
  return new Promise((resolve, reject) => fs.read(fd, buf, offset, length, null, (e, n) => (e ? reject(e) : resolve(n))));
}

/**
 * The read end of a blocking pipe as a ByteSource. At EOF, `atEnd` decides
 * whether it is the normal end (resolves) or the producer failed (throws its
 * error): the consumer sees the end only once the writer reported success.
 * `onCancel` tells the producer to stop (the writer's task.cancel()).
 */
export class PipeSource implements ByteSource {
  readonly kind = 'bytes' as const;
  cancelled = false;
  private eof = false;
  private closed = false;
  private pending: Promise<unknown> = Promise.resolve();
  private draining: Promise<void> | undefined;

  constructor(
    private readonly fd: number,
    private readonly atEnd: () => Promise<void>,
    private readonly onCancel: () => void,
  ) {}

  async read(buf: Buffer, offset: number, length: number): Promise<number> {
    if (this.cancelled || this.closed) throw new Error('the pipe source was cancelled');
    if (this.eof) return 0;
    const p = fsRead(this.fd, buf, offset, length);
    this.pending = p.catch(() => undefined);
    const n = await p;
    if (n > 0) return n;
    this.eof = true;
    await this.atEnd();
    return 0;
  }

  /** The consumer gave up: the producer is told to stop and the pipe is drained until it closes its end. */
  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.onCancel();
    this.draining = this.drain();
  }

  private async drain(): Promise<void> {
    await this.pending;
    const scratch = Buffer.allocUnsafe(256 << 10);
    while (!this.eof) {
      try {
        if ((await fsRead(this.fd, scratch, 0, scratch.length)) === 0) this.eof = true;
      } catch {
        this.eof = true;
      }
    }
  }

  /** Waits for the writer's end of the pipe (reading what is left), then closes the read end. Call once the writer settled. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.draining ??= this.drain();
    await this.draining;
    this.closed = true;
    fs.closeSync(this.fd);
  }
}

/** A ByteSource as a Readable of 1 MiB chunks (for a location that writes streams: a local directory). */
export function byteSourceStream(src: ByteSource): Readable {
  return Readable.from(
    (async function* () {
      for (;;) {
        const b = Buffer.allocUnsafe(1 << 20);
        const n = await src.read(b, 0, b.length);
        if (n === 0) return;
        yield b.subarray(0, n);
      }
    })(),
    { objectMode: false, highWaterMark: 1 },
  );
}
