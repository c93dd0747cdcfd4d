// The location interface against a local directory and a real S3-compatible
// server (s3rver on 127.0.0.1): the same contract for both.
import t, { Test } from 'tap';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';

import { GutsError } from '../../src/errors';
import { Location, openLocation, splitUrl } from '../../src/location';
import { startS3, storedKeys } from '../lib/s3';

async function collect(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** A stream of `size` pseudo-random bytes in 1 MiB chunks; fails after `failAt` bytes if given. */
function source(data: Buffer, failAt?: number): Readable {
  let off = 0;
  return new Readable({
    read() {
      if (failAt !== undefined && off >= failAt) return this.destroy(new GutsError('GUTS_IO', 'the writer failed'));
      if (off >= data.length) return this.push(null);
      const n = Math.min(1 << 20, data.length - off);
      this.push(data.subarray(off, off + n));
      off += n;
    },
  });
}

async function contract(t: Test, loc: Location, visible: () => string[]) {
  const data = crypto.randomBytes(20 * 1024 * 1024 + 12345); // > 2 parts of 8 MiB
  const n = await loc.upload('a/big.bin', source(data));
  t.equal(n, data.length, 'upload counts every byte');
  const st = await loc.stat('a/big.bin');
  t.equal(st?.size, data.length, 'stat size');
  t.ok(crypto.createHash('sha256').update(await collect(await loc.read('a/big.bin'))).digest('hex') === crypto.createHash('sha256').update(data).digest('hex'), 'whole read round-trips');
  t.same(await collect(await loc.read('a/big.bin', { start: 9_000_000, end: 9_000_099 })), data.subarray(9_000_000, 9_000_100), 'ranged read');
  await t.rejects(loc.upload('a/big.bin', source(Buffer.from('x'))), { code: 'GUTS_EXISTS' }, 'no silent overwrite');
  await loc.put('a/big.bin.sha256', 'abc\n');
  t.equal((await loc.get('a/big.bin.sha256'))?.toString(), 'abc\n');
  t.equal(await loc.get('nope'), null, 'absent object: null');
  t.equal(await loc.stat('nope'), null, 'absent stat: null');
  await t.rejects(loc.upload('a/failed.bin', source(data, 17 * 1024 * 1024)), { code: 'GUTS_IO' }, 'a failing source fails the upload with its own error');
  t.notOk(await loc.stat('a/failed.bin'), 'nothing under the final key after a failed upload');
  t.notOk(visible().some((k) => k.includes('failed')), 'nothing stored for the failed upload');
  const ac = new AbortController();
  let sent = 0;
  const stalling = new Readable({
    read() {
      if (sent < 18 << 20) this.push(data.subarray(sent, (sent += 1 << 20)));
      else setTimeout(() => ac.abort(), 100); // a writer that stopped producing
    },
  });
  await t.rejects(loc.upload('a/cancelled.bin', stalling, { signal: ac.signal }), { code: 'GUTS_CANCELLED' });
  t.notOk(await loc.stat('a/cancelled.bin'), 'nothing under the final key after a cancelled upload');
  t.same((await loc.list()).map((o) => o.key), ['a/big.bin', 'a/big.bin.sha256'], 'list');
  t.same((await loc.list('a/big.bin.')).map((o) => o.key), ['a/big.bin.sha256'], 'list by prefix');
  await loc.delete('a/big.bin.sha256');
  await loc.delete('a/big.bin.sha256'); // absent: fine
  t.same((await loc.list()).map((o) => o.key), ['a/big.bin']);
  await t.rejects(loc.put('../x', 'x'), { code: 'GUTS_UNSAFE_PATH' });
}

t.test('local directory', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'guts-loc-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const loc = openLocation(dir);
  t.equal(loc.kind, 'local');
  await contract(t, loc, () => fs.readdirSync(path.join(dir, 'a')));
});

t.test('S3 (s3rver on loopback)', async (t) => {
  const s3 = await startS3(['guts-backups']);
  t.teardown(() => s3.stop());
  const saved = { ...process.env };
  Object.assign(process.env, s3.env);
  t.teardown(() => {
    process.env = saved;
  });
  const loc = openLocation('s3://guts-backups/node-1');
  t.equal(loc.url, 's3://guts-backups/node-1/');
  t.equal(loc.urlOf('x.tar.zst'), 's3://guts-backups/node-1/x.tar.zst');
  await contract(t, loc, () => storedKeys(s3, 'guts-backups'));
  t.same(storedKeys(s3, 'guts-backups'), ['node-1/a/big.bin'], 'what the server holds');

  const missing = openLocation('s3://no-such-bucket/x');
  await t.rejects(missing.list(), { code: 'GUTS_NOT_FOUND' }, 'missing bucket');
  await t.rejects(missing.stat('k'), { code: 'GUTS_NOT_FOUND' }, 'missing bucket on stat');

  // s3rver checks the key id (it does not recompute V4 signatures)
  process.env.AWS_ACCESS_KEY_ID = 'NOSUCHKEY';
  const bad = openLocation('s3://guts-backups/node-1');
  const err = await bad.list().then(
    () => null,
    (e: GutsError) => e,
  );
  t.equal(err?.code, 'GUTS_PERMISSION', 'a wrong secret: GUTS_PERMISSION');
  t.notOk(err!.message.includes(s3.secret), 'the secret is not in the message: ' + err!.message);
  t.match(err!.message, 's3://guts-backups/node-1/', 'the message names the URL');
  loc.close();
  bad.close();
  missing.close();
});

t.test('splitUrl', async (t) => {
  const a = splitUrl('s3://bucket-1/p/q/name.tar.zst');
  t.equal(a.location.url, 's3://bucket-1/p/q/');
  t.equal(a.key, 'name.tar.zst');
  const b = splitUrl('/tmp/x/name.tar.zst');
  t.equal(b.location.url, '/tmp/x');
  t.equal(b.key, 'name.tar.zst');
  t.throws(() => openLocation('s3://A_B/x'), { code: 'GUTS_INVALID_ARGUMENT' });
});
