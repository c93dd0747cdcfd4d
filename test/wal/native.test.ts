// The RocksDB side of WAL archiving: retention, commit times, tail continuity,
// replay onto a checkpoint, restore points.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { native } from '../../src/native';
import { GutsStore } from '../../src/store';

async function put(s: GutsStore, i: number) {
  await s.putObjects('a/b', [{ type: 'blob', data: Buffer.from(`object ${i}`) }]);
}

t.test('tail returns every committed batch with its commit time, across flushes', async (t) => {
  const dir = t.testdir();
  fs.mkdirSync(path.join(dir, 'wal')); // archiving on: WAL files are retained
  const s = await GutsStore.open(dir);
  t.teardown(() => s.close());
  const before = Date.now() * 1000;
  for (let i = 0; i < 5; i++) await put(s, i);
  await s.native.flush(); // the log rolls into db/archive/
  const mark = await native.walMark(s.native, 'before-migration');
  for (let i = 5; i < 8; i++) await put(s, i);
  await s.native.putBlocks([1, 2], [Buffer.from('b1'), Buffer.from('b2')], 1);
  t.ok(fs.readdirSync(path.join(dir, 'db', 'archive')).some((f) => f.endsWith('.log')), 'obsolete WAL kept in db/archive');
  const tail = await native.walTail(s.native, 'db', 1);
  t.equal(tail.gap, null);
  let next = 1;
  for (const b of tail.batches) {
    t.equal(b.seq, next, `batch at ${b.seq}`);
    t.equal(b.data.readUInt32LE(8), b.count);
    t.ok(b.timeUs >= before && b.timeUs <= Date.now() * 1000, 'commit time');
    next = b.seq + b.count;
  }
  t.equal(next - 1, tail.latest);
  const m = tail.batches.filter((b) => b.mark);
  t.same(m.map((b) => [b.mark, b.seq, b.timeUs]), [['before-migration', mark.seq, mark.timeUs]]);
  const limited = await native.walTail(s.native, 'db', 1, { maxBatches: 2 });
  t.equal(limited.batches.length, 2);
  const cons = await native.walTail(s.native, 'consensus', 1);
  t.equal(cons.batches.length, 1);
  t.equal(cons.batches[0].count, 4, 'two blocks, block count, finalized height');
  t.same(await native.walTail(s.native, 'db', tail.latest + 1), { batches: [], latest: tail.latest, gap: null }, 'caught up');
  t.same((await native.walTail(s.native, 'db', tail.latest + 5)).gap, { expected: tail.latest + 5, found: tail.latest + 1 }, 'store behind the archive');
});

t.test('a missing WAL file is a gap, never skipped', async (t) => {
  const dir = t.testdir();
  fs.mkdirSync(path.join(dir, 'wal'));
  const s = await GutsStore.open(dir);
  t.teardown(() => s.close());
  for (let i = 0; i < 3; i++) await put(s, i);
  await s.native.flush();
  for (let i = 3; i < 6; i++) await put(s, i);
  const archive = path.join(dir, 'db', 'archive');
  for (const f of fs.readdirSync(archive)) fs.unlinkSync(path.join(archive, f));
  const tail = await native.walTail(s.native, 'db', 1);
  t.equal(tail.batches.length, 0);
  t.equal(tail.gap!.expected, 1);
  t.ok(tail.gap!.found === 0 || tail.gap!.found > 1, `log continues at ${tail.gap!.found}`);
});

t.test('without DATA_DIR/wal the WAL is not retained', async (t) => {
  const dir = t.testdir();
  const s = await GutsStore.open(dir);
  t.teardown(() => s.close());
  for (let i = 0; i < 3; i++) await put(s, i);
  await s.native.flush();
  const archive = path.join(dir, 'db', 'archive');
  t.notOk(fs.existsSync(archive) && fs.readdirSync(archive).length > 0);
});

t.test('apply replays onto a checkpoint exactly, skips what it holds, refuses a gap', async (t) => {
  const dir = t.testdir({ src: {} });
  const src = path.join(dir, 'src');
  fs.mkdirSync(path.join(src, 'wal'));
  const s = await GutsStore.open(src);
  t.teardown(() => s.close());
  await put(s, 0);
  await s.native.checkpoint(path.join(dir, 'base'), { db: true, consensus: true });
  for (let i = 1; i < 6; i++) await put(s, i);
  await native.walMark(s.native, 'm');
  const tail = await native.walTail(s.native, 'db', 1);
  const r = await GutsStore.open(path.join(dir, 'base'));
  t.teardown(() => r.close());
  const applied = await native.walApply(r.native, 'db', tail.batches.map((b) => b.data));
  t.same(applied, { applied: tail.batches.length - 1, skipped: 1, latest: tail.latest });
  t.same(await r.counts(), await s.counts());
  t.same(await native.walApply(r.native, 'db', tail.batches.map((b) => b.data)), { applied: 0, skipped: tail.batches.length, latest: tail.latest });
  for (let i = 6; i < 9; i++) await put(s, i);
  const more = await native.walTail(s.native, 'db', tail.latest + 1);
  await t.rejects(native.walApply(r.native, 'db', more.batches.slice(1).map((b) => b.data)), { code: 'GUTS_CORRUPT' });
  t.equal(s.native.sequences().db, more.batches[more.batches.length - 1].seq + more.batches[more.batches.length - 1].count - 1);
});

t.test('compress / decompress bound the output', async (t) => {
  const raw = Buffer.alloc(200_000, 3);
  const z = await native.walCompress(raw, 3);
  t.ok((await native.walDecompress(z, raw.length)).equals(raw));
  await t.rejects(native.walDecompress(z, raw.length - 1), { code: 'GUTS_CORRUPT' });
  await t.rejects(native.walDecompress(Buffer.concat([z, z]), raw.length * 2), { code: 'GUTS_CORRUPT' });
  await t.rejects(native.walDecompress(Buffer.from('nope'), 10), { code: 'GUTS_CORRUPT' });
});

t.test('a kept cursor follows the log across writes and log switches', async (t) => {
  const dir = t.testdir();
  fs.mkdirSync(path.join(dir, 'wal'));
  const s = await GutsStore.open(dir);
  t.teardown(() => (s.native.isOpen() ? s.close() : undefined));
  let next = 1;
  let seen = 0;
  for (let round = 0; round < 12; round++) {
    for (let i = 0; i < 4; i++) await put(s, round * 10 + i);
    if (round % 3 === 1) await s.native.flush(); // a new log file
    const tail = await native.walTail(s.native, 'db', next, { maxBatches: round % 2 ? 3 : 100 });
    t.equal(tail.gap, null);
    for (const b of tail.batches) {
      if (b.seq !== next) t.fail(`batch at ${b.seq}, expected ${next}`);
      next = b.seq + b.count;
      seen++;
    }
  }
  for (;;) {
    const tail = await native.walTail(s.native, 'db', next);
    if (!tail.batches.length) break;
    for (const b of tail.batches) {
      t.equal(b.seq, next);
      next = b.seq + b.count;
      seen++;
    }
  }
  t.equal(seen, 48, 'every batch once');
  t.equal(next - 1, s.native.sequences().db);
  await s.close(); // before the test dir is removed: a flush's background work may still be creating files
});

t.test('a replay store writes without a WAL; flush() makes the batches durable, a reopened store holds them', async (t) => {
  const dir = t.testdir({ src: {} });
  const src = path.join(dir, 'src');
  fs.mkdirSync(path.join(src, 'wal'));
  const s = await GutsStore.open(src);
  t.teardown(() => s.close());
  await put(s, 0);
  await s.native.checkpoint(path.join(dir, 'base'), { db: true, consensus: true });
  for (let i = 1; i < 200; i++) await put(s, i);
  await native.walMark(s.native, 'm');
  const tail = await native.walTail(s.native, 'db', 1);
  const base = path.join(dir, 'base');
  const walBytes = () => fs.readdirSync(path.join(base, 'db')).filter((f) => f.endsWith('.log')).reduce((n, f) => n + fs.statSync(path.join(base, 'db', f)).size, 0);
  const r = await GutsStore.open(base, { replay: true });
  const before = walBytes(); // the open recovers the checkpoint's log into a new, empty one
  const applied = await native.walApply(r.native, 'db', tail.batches.map((b) => b.data));
  t.same(applied, { applied: tail.batches.length - 1, skipped: 1, latest: tail.latest });
  t.equal(walBytes(), before, 'nothing written to the WAL');
  await r.native.flush();
  t.same(await r.counts(), await s.counts(), 'readable after the flush');
  await r.close();
  const again = await GutsStore.open(base);
  t.teardown(() => again.close());
  t.equal(again.native.sequences().db, tail.latest, 'the sequence survives the reopen');
  t.same(await again.counts(), await s.counts(), 'every replayed object survives the reopen');
  const obj = await again.getObject((await s.putObjects('a/b', [{ type: 'blob', data: Buffer.from('object 150') }])).ids[0]);
  t.ok(obj, 'an object written by the replay is read back');
});

t.test('walCheckBatches checks a segment of batches on a worker: the first bad one, or null', async (t) => {
  const dir = t.testdir();
  const s = await GutsStore.open(dir);
  t.teardown(() => s.close());
  for (let i = 0; i < 3; i++) await put(s, i);
  await s.native.putBlocks([1], [Buffer.from('b1')], 1);
  const db = (await native.walTail(s.native, 'db', 1)).batches.map((b) => b.data);
  const cons = (await native.walTail(s.native, 'consensus', 1)).batches.map((b) => b.data);
  t.equal(await native.walCheckBatches(Uint8Array.from([0, 0, 1, 0]), [db[0], db[1], cons[0], db[2]]), null);
  const bad = await native.walCheckBatches(Uint8Array.from([0, 1, 1]), [db[0], db[1], cons[0]]);
  t.equal(bad!.index, 1, 'a db batch checked as a consensus one');
  t.match(bad!.why, /column family \d+ does not exist in the consensus store/);
  const short = await native.walCheckBatches(Uint8Array.from([0]), [db[0].subarray(0, 11)]);
  t.same(short, { index: 0, why: 'batch of 11 bytes is too short' });
  t.throws(() => native.walCheckBatches(Uint8Array.from([0]), [db[0], db[1]]), { code: 'GUTS_INVALID_ARGUMENT' });
  t.throws(() => native.walCheckBatches(Uint8Array.from([2]), [db[0]]), { code: 'GUTS_INVALID_ARGUMENT' });
});
