// The multipart uploader (src/location/s3-upload.ts) and the byte sources
// (src/location/byte-source.ts) against a real S3-compatible server (s3rver
// on 127.0.0.1): a bounded pool of part buffers, part boundaries, the
// single-PutObject path, failures and aborts that leave nothing behind, and
// the native pipe read straight into the part buffers.
import t from 'tap';
import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';

import { GutsError } from '../../src/errors';
import { openLocation } from '../../src/location';
import { PipeSource, readableSource } from '../../src/location/byte-source';
import { capacity, growAt, MAX_PARTS, UploadStats } from '../../src/location/s3-upload';
import { ByteSource } from '../../src/location/types';
import { native } from '../../src/native';
import { startS3, storedKeys, storedObjectPath } from '../lib/s3';
import * as fs from 'node:fs';

const MiB = 1 << 20;
const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

/** A producer handing out `data` in uneven pieces; fails with GUTS_IO after `failAt` bytes if given. */
function bytes(data: Buffer, failAt?: number): ByteSource & { cancelled: boolean; reads: number } {
  let off = 0;
  const src = {
    kind: 'bytes' as const,
    cancelled: false,
    reads: 0,
    async read(buf: Buffer, offset: number, length: number): Promise<number> {
      src.reads++;
      await new Promise((r) => setImmediate(r));
      if (failAt !== undefined && off >= failAt) throw new GutsError('GUTS_IO', 'the writer failed');
      const n = Math.min(length, data.length - off, 100_000 + (src.reads % 7) * 37_000);
      data.copy(buf, offset, off, off + n);
      off += n;
      return n;
    },
    cancel() {
      src.cancelled = true;
    },
  };
  return src;
}

const fresh = (): UploadStats => ({ buffers: 0, parts: 0, inFlight: 0, bufferBytes: 0 });

t.test('part size growth keeps any archive under 10,000 parts', async (t) => {
  t.notOk(growAt(4999), 'no growth before part 5000');
  t.ok(growAt(5000), 'doubles at 5000');
  t.ok(growAt(7500), 'and at 7500');
  t.notOk(growAt(MAX_PARTS), 'never at the last part');
  t.ok(capacity(5 * MiB) > 300e9, `5 MiB parts hold ${(capacity(5 * MiB) / 1e9).toFixed(0)} GB in 10,000 parts`);
  t.ok(capacity(8 * MiB) >= MAX_PARTS * 8 * MiB, 'never less than without growth');
});

t.test('uploader against s3rver', async (t) => {
  const s3 = await startS3(['guts-backups']);
  t.teardown(() => s3.stop());
  const saved = { ...process.env };
  Object.assign(process.env, s3.env);
  t.teardown(() => {
    process.env = saved;
  });
  const loc = openLocation('s3://guts-backups/up');
  t.teardown(() => loc.close());
  const stored = (key: string) => fs.readFileSync(storedObjectPath(s3, 'guts-backups', `up/${key}`));

  // a bounded pool: 5 MiB parts, 2 in flight -> at most 3 buffers, whatever the size
  const data = crypto.randomBytes(46 * MiB + 4321);
  let stats = fresh();
  const progress: number[] = [];
  const n = await loc.upload('big.bin', bytes(data), { partSize: 5 * MiB, queueSize: 2, stats, onProgress: (b) => progress.push(b) });
  t.equal(n, data.length, 'every byte counted');
  t.equal(sha(stored('big.bin')), sha(data), 'stored object = source bytes');
  t.equal(stats.parts, 10, '10 parts (9 full + the rest)');
  t.ok(stats.buffers <= 3, `at most queueSize + 1 part buffers (${stats.buffers})`);
  t.ok(stats.bufferBytes <= 15 * MiB, `part buffer bytes bounded (${stats.bufferBytes})`);
  t.ok(stats.inFlight >= 1 && stats.inFlight <= 2, `at most queueSize parts in flight (${stats.inFlight})`);
  t.equal(progress[progress.length - 1], data.length, 'progress reaches the total');

  // an exact multiple of the part size: no empty last part
  const exact = crypto.randomBytes(10 * MiB);
  stats = fresh();
  t.equal(await loc.upload('exact.bin', bytes(exact), { partSize: 5 * MiB, queueSize: 2, stats }), exact.length);
  t.equal(stats.parts, 2, 'two parts');
  t.equal(sha(stored('exact.bin')), sha(exact), 'exact multiple round-trips');

  // smaller than one part: one PutObject, and an empty object
  stats = fresh();
  t.equal(await loc.upload('small.bin', bytes(Buffer.from('hello')), { partSize: 5 * MiB, stats }), 5);
  t.equal(stats.parts, 0, 'no multipart upload for one part');
  t.equal(stored('small.bin').toString(), 'hello');
  t.equal(await loc.upload('empty.bin', bytes(Buffer.alloc(0))), 0);
  t.equal(stored('empty.bin').length, 0, 'empty object');

  // a Readable source goes through the same pool
  stats = fresh();
  const { Readable } = await import('node:stream');
  t.equal(await loc.upload('stream.bin', Readable.from([data.subarray(0, 7 * MiB), data.subarray(7 * MiB, 12 * MiB)]), { partSize: 5 * MiB, queueSize: 1, stats }), 12 * MiB);
  t.equal(sha(stored('stream.bin')), sha(data.subarray(0, 12 * MiB)), 'Readable round-trips');
  t.ok(stats.buffers <= 2, 'queueSize 1: two buffers');

  // the producer fails after 3 parts: its error, nothing under the key, the source told
  const failing = bytes(data, 17 * MiB);
  await t.rejects(loc.upload('failed.bin', failing, { partSize: 5 * MiB, queueSize: 2 }), { code: 'GUTS_IO', message: 'the writer failed' }, "the producer's own error");
  t.ok(failing.cancelled, 'the source was cancelled');
  t.notOk(storedKeys(s3, 'guts-backups').includes('up/failed.bin'), 'no object after a failed producer');

  // an abort mid-way: GUTS_CANCELLED, nothing under the key
  const ac = new AbortController();
  const aborted = bytes(data);
  const p = loc.upload('aborted.bin', aborted, { partSize: 5 * MiB, queueSize: 2, signal: ac.signal, onProgress: (b) => b > 12 * MiB && ac.abort() });
  await t.rejects(p, { code: 'GUTS_CANCELLED' }, 'abort: GUTS_CANCELLED');
  t.ok(aborted.cancelled, 'the source was cancelled');
  t.notOk(storedKeys(s3, 'guts-backups').includes('up/aborted.bin'), 'no object after an abort');

  // the server gone mid-upload: GUTS_IO naming the URL, the source cancelled
  const gone = bytes(data);
  const q = loc.upload('gone.bin', gone, { partSize: 5 * MiB, queueSize: 2, onProgress: (b) => b > 12 * MiB && void s3.kill() });
  const err = await q.then(
    () => null,
    (e: GutsError) => e,
  );
  t.equal(err?.code, 'GUTS_IO', 'server gone: GUTS_IO');
  t.match(err?.message, 's3://guts-backups/up/gone.bin', 'the error names the URL');
  t.notOk(err?.message.includes(s3.secret), 'no secret in the message');
  t.ok(gone.cancelled, 'the source was cancelled');
  await s3.restart();
  t.notOk(storedKeys(s3, 'guts-backups').includes('up/gone.bin'), 'no object under the key after the server came back');
  t.same(storedKeys(s3, 'guts-backups').filter((k) => k.endsWith('.bin')).sort(), ['up/big.bin', 'up/empty.bin', 'up/exact.bin', 'up/small.bin', 'up/stream.bin'], 'only the completed uploads');
});

/** A child writing `size` deterministic bytes to our pipe's write end (as the native writer would). */
function writer(wfd: number, size: number) {
  // (Node makes its stdout pipe non-blocking: EAGAIN means wait and retry)
  const script = `const fs=require('fs');const nap=new Int32Array(new SharedArrayBuffer(4));const b=Buffer.alloc(1<<20);let left=${size},i=0;
while(left>0){b.fill(i++%251);let off=0;const n=Math.min(left,b.length);
while(off<n){try{off+=fs.writeSync(1,b,off,n-off)}catch(e){if(e.code!=='EAGAIN')throw e;Atomics.wait(nap,0,0,2)}}left-=n}`;
  const child = spawn(process.execPath, ['-e', script], {
    stdio: ['ignore', wfd, 'pipe'],
  });
  fs.closeSync(wfd);
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((r) => child.on('close', (c, sig) => r(sig ? -1 : c)));
  return { child, exited, stderr: () => err };
}

function expected(size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let off = 0, i = 0; off < size; off += 1 << 20, i++) out.fill(i % 251, off, Math.min(size, off + (1 << 20)));
  return out;
}

t.test('PipeSource: a native pipe read straight into the part buffers', async (t) => {
  const s3 = await startS3(['guts-backups']);
  t.teardown(() => s3.stop());
  const saved = { ...process.env };
  Object.assign(process.env, s3.env);
  t.teardown(() => {
    process.env = saved;
  });
  const loc = openLocation('s3://guts-backups/pipe');
  t.teardown(() => loc.close());

  // the end is reported only once the writer succeeded
  let [rfd, wfd] = native.makePipe();
  let w = writer(wfd, 21 * MiB + 5);
  let src = new PipeSource(rfd, async () => {
    const code = await w.exited;
    if (code !== 0) throw new GutsError('GUTS_IO', `writer exited ${code}: ${w.stderr()}`);
  }, () => w.child.kill());
  const stats = fresh();
  t.equal(await loc.upload('a.bin', src, { partSize: 5 * MiB, queueSize: 2, stats }), 21 * MiB + 5);
  await src.close();
  t.equal(sha(fs.readFileSync(storedObjectPath(s3, 'guts-backups', 'pipe/a.bin'))), sha(expected(21 * MiB + 5)), 'pipe bytes round-trip');
  t.ok(stats.buffers <= 3, 'bounded pool');

  // a writer that fails: its error, no object
  [rfd, wfd] = native.makePipe();
  w = writer(wfd, 9 * MiB);
  src = new PipeSource(rfd, async () => {
    await w.exited;
    throw new GutsError('GUTS_CORRUPT', 'the archive writer failed');
  }, () => w.child.kill());
  await t.rejects(loc.upload('b.bin', src, { partSize: 5 * MiB }), { code: 'GUTS_CORRUPT' }, "the writer's error, not a short object");
  await src.close();
  t.notOk(storedKeys(s3, 'guts-backups').includes('pipe/b.bin'), 'no object after a failed writer');

  // the upload fails while the writer still writes: the writer is told to
  // stop, the pipe drained (the writer never blocks on it), close() joins
  [rfd, wfd] = native.makePipe();
  w = writer(wfd, 400 * MiB);
  let stopped = false;
  src = new PipeSource(rfd, async () => undefined, () => {
    stopped = true;
    w.child.kill();
  });
  const ac = new AbortController();
  await t.rejects(loc.upload('c.bin', src, { partSize: 5 * MiB, signal: ac.signal, onProgress: (b) => b > 6 * MiB && ac.abort() }), { code: 'GUTS_CANCELLED' });
  t.ok(stopped, 'the writer was told to stop');
  await src.close();
  const code = await w.exited;
  t.ok(typeof code === 'number', `the writer ended (${code}), not blocked on a full pipe`);
  t.notOk(storedKeys(s3, 'guts-backups').includes('pipe/c.bin'), 'no object after the abort');

  // readableSource: a destroyed stream is a failure, not an end
  const { Readable } = await import('node:stream');
  const r = new Readable({ read() {} });
  r.push(Buffer.from('abc'));
  const rs = readableSource(r);
  const buf = Buffer.alloc(10);
  t.equal(await rs.read(buf, 0, 10), 3);
  setImmediate(() => r.destroy());
  await t.rejects(rs.read(buf, 0, 10), 'a destroyed stream rejects');
});
