// Defects found by a hostile tester of point-in-time restore and `wal verify`:
// each test fails without its fix.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { validateConfig } from '../../src/config';
import { native } from '../../src/native';
import { GutsStore } from '../../src/store';
import { parseUntilTime, restorePointInTime } from '../../src/wal/pitr';
import { decodeSegment, encodeSegment, segmentName } from '../../src/wal/segment';
import { verifyWalArchive } from '../../src/wal/verify-archive';
import { cli } from '../fixtures/cli';
import { baseBackup, present, SegmentCutter, sleep, writeBlobs } from './helpers';

/** tl 1: A | seg 1 | base | B | seg 2 | mark m1, C | seg 3 | D | seg 4 */
async function scenario(dir: string) {
  const src = path.join(dir, 'src');
  fs.mkdirSync(path.join(src, 'wal'), { recursive: true });
  const store = await GutsStore.open(src, { create: true });
  const archive = path.join(dir, 'archive');
  const cutter = new SegmentCutter(store, archive);
  const A = await writeBlobs(store, ['a1']);
  await cutter.cut();
  const base = await baseBackup(store, cutter, dir, 'base.tar.zst');
  const B = await writeBlobs(store, ['b1']);
  await cutter.cut();
  await native.walMark(store.native, 'm1');
  const C = await writeBlobs(store, ['c1']);
  await cutter.cut();
  const D = await writeBlobs(store, ['d1']);
  await cutter.cut();
  await store.close();
  return { src, archive, base, A, B, C, D };
}

const cfg = (archive: string) => validateConfig({ wal: { archive_dir: archive } }, 'test');

t.test('1: a WAL archive location that does not exist is refused and never created; an archive without a segment for the base is reported loudly', async (t) => {
  const dir = t.testdir();
  const s = await scenario(dir);
  const missing = path.join(dir, 'no-such-archive');
  for (const where of [missing, 'relative/no-such-archive']) {
    const out = cli(['backup', 'restore', s.base, '--wal', '--archive-dir', where, '--target', path.join(dir, 'r1')]);
    t.equal(out.status, 2, out.stderr);
    t.match(out.stderr, /^guts-node: GUTS_NOT_FOUND: WAL archive .*no-such-archive .*does not exist\n$/);
  }
  t.notOk(fs.existsSync(missing), 'the missing archive dir is not created');
  t.notOk(fs.existsSync(path.join(dir, 'r1')), 'target untouched');
  // the configured wal.archive_dir likewise
  await t.rejects(restorePointInTime({ file: s.base, target: path.join(dir, 'r2'), config: cfg(missing), until: null }), { code: 'GUTS_NOT_FOUND' });
  t.notOk(fs.existsSync(missing) || fs.existsSync(path.join(dir, 'r2')));
  // an existing but empty archive: the base only, with a warning on stderr and in --json
  const empty = path.join(dir, 'empty');
  fs.mkdirSync(empty);
  const out = cli(['backup', 'restore', s.base, '--wal', '--archive-dir', empty, '--target', path.join(dir, 'r3'), '--json']);
  t.equal(out.status, 0, out.stderr);
  t.match(out.stderr, /warning: the WAL archive .*empty holds no segment for this base \(neither 00000001-0000000000000002\.gwal/);
  const j = JSON.parse(out.stdout) as { wal: { warnings: string[]; segments: number } };
  t.equal(j.wal.segments, 0);
  t.match(j.wal.warnings, [/holds no segment for this base/]);
  // the real archive: no warning
  const r = await restorePointInTime({ file: s.base, target: path.join(dir, 'r4'), config: cfg(s.archive), until: null });
  t.same(r.wal.warnings, []);
});

t.test('2: --until before the base backup is refused, target untouched; impossible dates are refused', async (t) => {
  const dir = t.testdir();
  const before = new Date(Date.now() - 1000).toISOString(); // before every write of the base
  const s = await scenario(dir);
  fs.writeFileSync(path.join(dir, 'config.yaml'), `wal:\n  archive_dir: ${s.archive}\n`);
  const out = cli(['backup', 'restore', s.base, '--wal', '--until', before, '--target', path.join(dir, 'r1')], { env: { GUTS_CONFIG: path.join(dir, 'config.yaml') } });
  t.equal(out.status, 2, out.stderr);
  t.match(out.stderr, /^guts-node: GUTS_INVALID_ARGUMENT: --until .* is not after the base backup \(its last write, archived in 00000001-0000000000000001\.gwal, is at .*\)/);
  t.notOk(fs.existsSync(path.join(dir, 'r1')));
  for (const bad of ['2026-02-30T00:00:00Z', '2025-02-29', '2026-13-01T00:00:00Z', '2026-04-31 12:00', '2026-01-01T24:00:00Z', '2026-01-01T12:60:00Z']) {
    t.throws(() => parseUntilTime(bad), { code: 'GUTS_INVALID_ARGUMENT' }, bad);
  }
  t.equal(parseUntilTime('2024-02-29T00:00:00Z'), Date.UTC(2024, 1, 29));
  t.equal(parseUntilTime('2026-01-31 12:00'), Date.UTC(2026, 0, 31, 12));
  t.equal(parseUntilTime('2026-01-31T12:00:00+01:00'), Date.UTC(2026, 0, 31, 11));
});

t.test('7: --timeline latest warns when the parent timeline goes on past the branch it follows', async (t) => {
  const dir = t.testdir();
  const s = await scenario(dir);
  const config = cfg(s.archive);
  // a test restore to m1 (inside segment 3): timeline 2 branches off after segment 3
  const r1 = await restorePointInTime({ file: s.base, target: path.join(dir, 'tl2'), config, until: { mark: 'm1' } });
  t.equal(r1.wal.new_timeline.timeline, 2);
  const store2 = await GutsStore.open(path.join(dir, 'tl2'));
  const cut2 = SegmentCutter.fromStateFile(store2, s.archive);
  await writeBlobs(store2, ['e1']);
  t.equal(await cut2.cut(), segmentName(2, 4));
  await store2.close();
  const logs: string[] = [];
  const r2 = await restorePointInTime({ file: s.base, target: path.join(dir, 'latest'), config, until: null, log: (l) => logs.push(l) });
  t.same(r2.wal.timelines_followed, [1, 2]);
  t.match(r2.wal.warnings, [/following timeline 2 \(the latest\), which branched off timeline 1 after segment 00000001-0000000000000003\.gwal .*00000001-0000000000000004\.gwal is archived.*--timeline 1/]);
  t.match(logs.join('\n'), /warning: following timeline 2/);
  t.same(await present(path.join(dir, 'latest'), s.D), [false]);
  // asked for explicitly: no warning
  const r3 = await restorePointInTime({ file: s.base, target: path.join(dir, 'tl2b'), config, until: null, timeline: 2 });
  t.same(r3.wal.warnings, []);
});

t.test('6: wal verify uses history files as evidence of how far their parent timeline reached', async (t) => {
  const dir = t.testdir();
  const s = await scenario(dir);
  const config = cfg(s.archive);
  // a restore to the end: timeline 2 branches off after segment 4 (its own segments never archived)
  const r = await restorePointInTime({ file: s.base, target: path.join(dir, 'r'), config, until: null });
  t.equal(r.wal.new_timeline.first_segment, segmentName(2, 5));
  t.equal((await verifyWalArchive({ config, from: s.base })).last_segment, segmentName(1, 4));
  // the last segment of timeline 1 lost: nothing after it is left to see, but 00000002.history says timeline 1 reached it
  fs.rmSync(path.join(s.archive, segmentName(1, 4)));
  await t.rejects(verifyWalArchive({ config, from: s.base }), { code: 'GUTS_WAL_GAP', message: /00000001-0000000000000004\.gwal is missing .*00000002\.history says timeline 1 reached segment 00000001-0000000000000004\.gwal/ });
  const out = cli(['wal', 'verify', '--from', s.base, '--archive-dir', s.archive]);
  t.equal(out.status, 1, out.stderr);
  t.match(out.stderr, /GUTS_WAL_GAP: WAL segment 00000001-0000000000000004\.gwal is missing/);
  // and without a base (from the latest timeline's first segment)
  t.equal(cli(['wal', 'verify', '--archive-dir', s.archive]).status, 1);
});

/** A WriteBatch rep with `count` PutCF records into column family `cf` (valid framing, impossible family). */
function forgedBatch(seq: number, count: number, cf: number): Buffer {
  const parts = [Buffer.alloc(12)];
  parts[0].writeBigUInt64LE(BigInt(seq), 0);
  parts[0].writeUInt32LE(count, 8);
  for (let i = 0; i < count; i++) parts.push(Buffer.from([0x05, cf, 1, 0x6b, 1, 0x76])); // kTypeColumnFamilyValue, cf, "k", "v"
  return Buffer.concat(parts);
}

t.test('5: batches restore cannot apply (forged payloads with correct checksums) are damage for wal verify and restore: GUTS_CORRUPT, exit 1', async (t) => {
  const dir = t.testdir();
  const s = await scenario(dir);
  // forge the last segment: same header, same sequences, valid checksums; the db batches write into column family 9
  const name = segmentName(1, 4);
  const seg = await decodeSegment(fs.readFileSync(path.join(s.archive, name)), name);
  const records = seg.records.map((r) => (r.db === 'db' ? { ...r, data: forgedBatch(r.seq, r.count, 9) } : r));
  const forged = await encodeSegment({ timeline: 1, segment: 4, dbFirstSeq: seg.db.first, consensusFirstSeq: seg.consensus.first, prevChecksum: seg.prevChecksum, records });
  fs.writeFileSync(path.join(s.archive, name), forged.file);
  t.ok(native.walCheckBatch('db', seg.records.find((r) => r.db === 'db')!.data) === null, 'the real batch is valid');
  t.match(native.walCheckBatch('db', forgedBatch(5, 1, 9)), /column family 9 does not exist in the db store/);
  t.match(native.walCheckBatch('consensus', forgedBatch(5, 1, 1)), /column family 1 does not exist in the consensus store/);
  t.match(native.walCheckBatch('db', forgedBatch(5, 2, 1).subarray(0, 18)), /count|Corruption/i, 'a record short of the count');

  const v = cli(['wal', 'verify', '--from', s.base, '--archive-dir', s.archive]);
  t.equal(v.status, 1, v.stderr);
  t.match(v.stderr, /^guts-node: GUTS_CORRUPT: WAL segment 00000001-0000000000000004\.gwal: db batch at sequence \d+ cannot be applied: column family 9 does not exist/);
  const r = cli(['backup', 'restore', s.base, '--wal', '--archive-dir', s.archive, '--target', path.join(dir, 'r')]);
  t.equal(r.status, 1, r.stderr);
  t.match(r.stderr, /GUTS_CORRUPT: WAL segment 00000001-0000000000000004\.gwal/);
  t.notOk(fs.existsSync(path.join(dir, 'r')), 'target untouched');
  // a target before the forged segment is still restorable
  const ok = await restorePointInTime({ file: s.base, target: path.join(dir, 'm'), config: cfg(s.archive), until: { mark: 'm1' } });
  t.equal(ok.wal.segments, 2);
});
