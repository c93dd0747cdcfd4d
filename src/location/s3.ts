// S3-compatible object storage as a backup location: s3://bucket/prefix.
//
// Endpoint, region and credentials: the standard AWS environment first
// (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, AWS_REGION / AWS_DEFAULT_REGION,
// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, AWS_PROFILE
// and ~/.aws/{config,credentials}), then config.yaml backup.s3.*. A custom
// endpoint (MinIO, Ceph, s3rver, ...) is addressed path-style.
//
// Uploads are multipart (src/location/s3-upload.ts: our own uploader, 8 MiB
// parts, 4 in flight by default, in a fixed pool of reused part buffers; a
// streamed archive picks its own: src/location/backup-stream.ts); the object
// appears only when CompleteMultipartUpload succeeds, which happens only after
// the source ended normally. Any error, a failed source or an aborted signal
// aborts the multipart upload instead. Whole-object reads are ranged GETs,
// several in flight, pinned to the ETag seen first.
import { Readable } from 'node:stream';

import { GutsError } from '../errors';
import { checkKey } from './local';
import { isByteSource, readableSource } from './byte-source';
import { multipartUpload } from './s3-upload';
import { ByteSource, Location, ObjectInfo, ReadOptions, UploadOptions } from './types';

// The SDK warns (process.emitWarning) that releases after early 2027 need
// Node >= 22. This build pins a release that supports Node 20; the warning
// is noise on an operator's terminal. The SDK's own switch, set before any
// client exists.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

/* eslint-disable @typescript-eslint/no-require-imports */
type S3Mod = typeof import('@aws-sdk/client-s3');
// loaded lazily: ~150 ms, and only commands that touch S3 need it
function s3(): S3Mod {
  return require('@aws-sdk/client-s3') as S3Mod;
}

export interface S3Settings {
  endpoint?: string;
  region?: string;
  profile?: string;
  access_key_id?: string;
  secret_access_key?: string;
  force_path_style?: boolean;
}

export const PART_SIZE = 8 * 1024 * 1024;
/** S3's smallest part (all but the last) and largest part count */
export const MIN_PART_SIZE = 5 * 1024 * 1024;
export { MAX_PARTS } from './s3-upload';
export const QUEUE_SIZE = 4;
const RANGE_SIZE = 8 * 1024 * 1024;

export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url);
  if (!m || !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(m[1]))
    throw new GutsError('GUTS_INVALID_ARGUMENT', `invalid S3 URL ${url}: expected s3://bucket[/prefix] with a valid bucket name`);
  let prefix = m[2];
  if (prefix && !prefix.endsWith('/')) prefix += '/';
  return { bucket: m[1], prefix };
}

/** Text with every known secret value replaced: SDK messages never reach the user with one. */
function scrub(text: string, secrets: string[]): string {
  let out = text;
  for (const s of secrets) if (s && s.length >= 4) out = out.split(s).join('***');
  return out;
}

export class S3Location implements Location {
  readonly kind = 's3' as const;
  readonly url: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly endpoint: string | undefined;
  private client: InstanceType<S3Mod['S3Client']>;
  private secrets: string[];

  constructor(url: string, settings: S3Settings = {}) {
    const { bucket, prefix } = parseS3Url(url);
    this.bucket = bucket;
    this.prefix = prefix;
    this.url = `s3://${bucket}/${prefix}`;
    const env = process.env;
    const endpoint = env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || settings.endpoint || undefined;
    this.endpoint = endpoint;
    const region = env.AWS_REGION || env.AWS_DEFAULT_REGION || settings.region || (endpoint ? 'us-east-1' : undefined);
    const keyId = env.AWS_ACCESS_KEY_ID ? undefined : settings.access_key_id;
    const secret = env.AWS_ACCESS_KEY_ID ? undefined : settings.secret_access_key;
    if (Boolean(keyId) !== Boolean(secret))
      throw new GutsError('GUTS_INVALID_CONFIG', 'backup.s3.access_key_id and backup.s3.secret_access_key must be set together');
    this.secrets = [env.AWS_SECRET_ACCESS_KEY ?? '', env.AWS_SESSION_TOKEN ?? '', secret ?? ''];
    const profile = env.AWS_PROFILE ? undefined : settings.profile || undefined;
    const { S3Client } = s3();
    this.client = new S3Client({
      region,
      ...(endpoint ? { endpoint, forcePathStyle: true } : {}),
      ...(settings.force_path_style ? { forcePathStyle: true } : {}),
      ...(keyId && secret ? { credentials: { accessKeyId: keyId, secretAccessKey: secret } } : {}),
      ...(profile ? { profile } : {}),
      maxAttempts: 3,
      // checksums only where S3 requires them: S3-compatible servers differ in
      // what they accept, and SHA-256 end to end is checked by guts-node itself
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }

  urlOf(key: string): string {
    return `s3://${this.bucket}/${this.prefix}${key}`;
  }

  private objectKey(key: string): string {
    checkKey(key, this.url);
    return this.prefix + key;
  }

  /** An SDK / network error as a GutsError naming the URL and the cause (never a credential). */
  error(e: unknown, what: string, key?: string): GutsError {
    if (e instanceof GutsError) return e;
    const err = e as { name?: string; Code?: string; code?: string; message?: string; $metadata?: { httpStatusCode?: number }; errors?: unknown[] };
    const where = key === undefined ? this.url : this.urlOf(key);
    const status = err?.$metadata?.httpStatusCode;
    const name = err?.Code || err?.name || err?.code || 'Error';
    let code: ConstructorParameters<typeof GutsError>[0] = 'GUTS_IO';
    if (name === 'NoSuchBucket' || name === 'NoSuchKey' || name === 'NotFound' || status === 404) code = 'GUTS_NOT_FOUND';
    else if (/AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch|Forbidden|CredentialsProviderError|ExpiredToken/.test(name) || status === 403)
      code = 'GUTS_PERMISSION';
    else if (name === 'AbortError') code = 'GUTS_CANCELLED';
    let msg = err?.message || String(e);
    if (!msg && Array.isArray(err?.errors)) msg = String((err.errors[0] as Error)?.message);
    const net = err?.code && /^E[A-Z]+$/.test(err.code) ? ` ${err.code}` : '';
    const endpoint = this.endpoint ? ` at ${this.endpoint}` : '';
    return new GutsError(code, scrub(`${what} ${where}${endpoint}: ${name}${net}${msg && msg !== name ? ` (${msg.split('\n')[0]})` : ''}`, this.secrets), where);
  }

  async upload(key: string, input: Readable | ByteSource, opts: UploadOptions = {}): Promise<number> {
    const Key = this.objectKey(key);
    const src = isByteSource(input) ? input : readableSource(input);
    const cancelled = () => new GutsError('GUTS_CANCELLED', `upload to ${this.urlOf(key)} interrupted; the multipart upload was aborted`, this.urlOf(key));
    try {
      if (!opts.overwrite && (await this.stat(key))) throw new GutsError('GUTS_EXISTS', `${this.urlOf(key)} already exists`, this.urlOf(key));
    } catch (e) {
      src.cancel(e as Error);
      throw e;
    }
    try {
      return await multipartUpload(this.client, s3(), { Bucket: this.bucket, Key }, src, {
        partSize: Math.max(MIN_PART_SIZE, opts.partSize ?? PART_SIZE),
        queueSize: Math.max(1, opts.queueSize ?? QUEUE_SIZE),
        signal: opts.signal,
        onProgress: opts.onProgress,
        cancelled,
        stats: opts.stats,
      });
    } catch (e) {
      // the source's own error (the archive writer failed) is the cause to report
      if (e instanceof GutsError) throw e;
      if (opts.signal?.aborted) throw cancelled();
      throw this.error(e, 'cannot upload to', key);
    }
  }

  async put(key: string, data: Buffer | string, opts: { overwrite?: boolean } = {}): Promise<void> {
    const Key = this.objectKey(key);
    if (!opts.overwrite && (await this.stat(key))) throw new GutsError('GUTS_EXISTS', `${this.urlOf(key)} already exists`, this.urlOf(key));
    try {
      await this.client.send(new (s3().PutObjectCommand)({ Bucket: this.bucket, Key, Body: typeof data === 'string' ? Buffer.from(data) : data }));
    } catch (e) {
      throw this.error(e, 'cannot write', key);
    }
  }

  private async getRange(Key: string, key: string, start: number, end: number, etag?: string, signal?: AbortSignal): Promise<Buffer> {
    try {
      const r = await this.client.send(
        new (s3().GetObjectCommand)({ Bucket: this.bucket, Key, Range: `bytes=${start}-${end}`, ...(etag ? { IfMatch: etag } : {}) }),
        { abortSignal: signal },
      );
      // straight into one buffer of the range's size: no list of chunks, no concatenation copy
      const want = end - start + 1;
      const b = Buffer.allocUnsafe(want);
      let got = 0;
      for await (const c of r.Body as AsyncIterable<Buffer>) {
        if (got + c.length > want) {
          got += c.length;
          break;
        }
        c.copy(b, got);
        got += c.length;
      }
      if (got !== want) throw new GutsError('GUTS_IO', `read ${this.urlOf(key)}: bytes ${start}-${end} came back as ${got} bytes`);
      return b;
    } catch (e) {
      throw this.error(e, 'cannot read', key);
    }
  }

  async read(key: string, opts: ReadOptions = {}): Promise<Readable> {
    const Key = this.objectKey(key);
    const info = await this.head(key);
    if (!info) throw new GutsError('GUTS_NOT_FOUND', `cannot read ${this.urlOf(key)}: no such object`, this.urlOf(key));
    const start = opts.start ?? 0;
    const end = Math.min(opts.end ?? info.size - 1, info.size - 1);
    const parallel = Math.max(1, opts.parallel ?? QUEUE_SIZE);
    if (end < start) return Readable.from([]);
    // Ranged GETs, `parallel` in flight, emitted in order: the network waits
    // on neither the consumer nor a single connection's window.
    const self = this;
    async function* ranges(): AsyncGenerator<Buffer> {
      const inflight: Array<Promise<Buffer>> = [];
      let next = start;
      try {
        while (next <= end || inflight.length) {
          while (inflight.length < parallel && next <= end) {
            const last = Math.min(end, next + RANGE_SIZE - 1);
            const p = self.getRange(Key, key, next, last, info!.etag, opts.signal);
            p.catch(() => undefined); // awaited in order below
            inflight.push(p);
            next = last + 1;
          }
          yield await inflight.shift()!;
        }
      } finally {
        inflight.length = 0;
      }
    }
    return Readable.from(ranges(), { objectMode: false, highWaterMark: 1 });
  }

  async get(key: string): Promise<Buffer | null> {
    const Key = this.objectKey(key);
    try {
      const r = await this.client.send(new (s3().GetObjectCommand)({ Bucket: this.bucket, Key }));
      return Buffer.from(await r.Body!.transformToByteArray());
    } catch (e) {
      const g = this.error(e, 'cannot read', key);
      if (g.code === 'GUTS_NOT_FOUND' && (e as { name?: string }).name !== 'NoSuchBucket') return null;
      throw g;
    }
  }

  private async head(key: string): Promise<(ObjectInfo & { etag?: string }) | null> {
    const Key = this.objectKey(key);
    try {
      const r = await this.client.send(new (s3().HeadObjectCommand)({ Bucket: this.bucket, Key }));
      return { key, size: Number(r.ContentLength ?? 0), mtime: r.LastModified ?? new Date(0), etag: r.ETag };
    } catch (e) {
      const g = this.error(e, 'cannot stat', key);
      if (g.code === 'GUTS_NOT_FOUND') {
        await this.checkBucket();
        return null;
      }
      throw g;
    }
  }

  /** A missing bucket is an error, not an absent object (HEAD has no body to tell them apart). */
  private async checkBucket(): Promise<void> {
    try {
      await this.client.send(new (s3().HeadBucketCommand)({ Bucket: this.bucket }));
    } catch (e) {
      const g = this.error(e, 'no bucket', undefined);
      if (g.code === 'GUTS_NOT_FOUND') throw new GutsError('GUTS_NOT_FOUND', `bucket ${this.bucket} does not exist${this.endpoint ? ` at ${this.endpoint}` : ''}`, this.url);
      throw g;
    }
  }

  async stat(key: string): Promise<ObjectInfo | null> {
    const h = await this.head(key);
    return h ? { key: h.key, size: h.size, mtime: h.mtime } : null;
  }

  async list(prefix = ''): Promise<ObjectInfo[]> {
    const out: ObjectInfo[] = [];
    let token: string | undefined;
    do {
      let r;
      try {
        r = await this.client.send(new (s3().ListObjectsV2Command)({ Bucket: this.bucket, Prefix: this.prefix + prefix, ContinuationToken: token }));
      } catch (e) {
        throw this.error(e, 'cannot list', undefined);
      }
      for (const o of r.Contents ?? []) {
        if (!o.Key) continue;
        out.push({ key: o.Key.slice(this.prefix.length), size: Number(o.Size ?? 0), mtime: o.LastModified ?? new Date(0) });
      }
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async delete(key: string): Promise<void> {
    const Key = this.objectKey(key);
    try {
      await this.client.send(new (s3().DeleteObjectCommand)({ Bucket: this.bucket, Key }));
    } catch (e) {
      throw this.error(e, 'cannot remove', key);
    }
  }

  close(): void {
    this.client.destroy();
  }
}
