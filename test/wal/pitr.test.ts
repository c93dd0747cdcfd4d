// Point-in-time restore and `wal verify` on real stores and real segments
// (cut from the store's WAL by test/wal/helpers.ts), through the library and
// the CLI: targets exact to the object, gaps and damage refused with the
// target untouched, timelines followed.
import t from 'tap';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { validateConfig } from '../../src/config';
import { native } from '../../src/native';
import { GutsStore } from '../../src/store';
import { restorePointInTime } from '../../src/wal/pitr';
import { decodeHistory, encodeHistory, readSegmentHeader, segmentName } from '../../src/wal/segment';
import { verifyWalArchive } from '../../src/wal/verify-archive';
import { BIN, cli } from '../fixtures/cli';
import { baseBackup, present, SegmentCutter, sleep, writeBlobs } from './helpers';

/**
 * tl 1: A | seg 1 | base | B | seg 2 | mark m1, C1 C2 | seg 3 | (time T) D | seg 4
 */
async function scenario(dir: string) {
  const src = path.join(dir, 'src');
  fs.mkdirSync(path.join(src, 'wal'), { recursive: true }); // archiving on: WAL kept
  const store = await GutsStore.open(src, { create: true });
  const archive = path.join(dir, 'archive');
  const cutter = new SegmentCutter(store, archive);
  const A = await writeBlobs(store, ['a1', 'a2']);
  await store.putBlocks([{ height: 0, data: Buffer.from('genesis') }], 0);
  await cutter.cut();
  const base = await baseBackup(store, cutter, dir, 'base.tar.zst');
  const B = await writeBlobs(store, ['b1', 'b2', 'b3']);
  await store.putBlocks([{ height: 1, data: Buffer.from('block 1') }], 1);
  await cutter.cut();
  const mark = await native.walMark(store.native, 'm1');
  const C = await writeBlobs(store, ['c1']);
  const cSeq = store.native.sequences().db; // c1's batch ends here
  C.push(...(await writeBlobs(store, ['c2'])));
  await cutter.cut();
  await sleep(30);
  const T = Date.now();
  await sleep(30);
  const D = await writeBlobs(store, ['d1']);
  await store.putBlocks([{ height: 2, data: Buffer.from('block 2') }], 2);
  await cutter.cut();
  const final = await store.counts();
  const finalSeq = store.native.sequences();
  await store.close();
  return { src, archive, base, A, B, C, D, T, cSeq, markSeq: mark.seq, final, finalSeq, cutter };
}

const cfg = (archive: string) => validateConfig({ wal: { archive_dir: archive } }, 'test');

t.test('PITR: to the end, to a mark, a sequence and a time: exactly the writes up to the target', async (t) => {
  const dir = t.testdir();
  const s = await scenario(dir);
  const all = [...s.A, ...s.B, ...s.C, ...s.D];
  const restore = (name: string, until: Parameters<typeof restorePointInTime>[0]['until'], verify = false) =>
    restorePointInTime({ file: s.base, target: path.join(dir, name), config: cfg(s.archive), until, verify });

  const end = await restore('end', null, true);
  t.same(await present(path.join(dir, 'end'), all), all.map(() => true));
  t.equal(end.verified, true, 'full object check against the replayed counts');
  t.equal(end.objects.blob, s.final.blob);
  t.equal(end.wal.segments, 3, 'segments 2..4 after the base (the base names segment 2)');
  t.equal(end.wal.base.segment, segmentName(1, 2));
  t.equal(end.wal.end_of_archive, segmentName(1, 5));
  t.equal(end.wal.reached.segment, segmentName(1, 4));
  t.same([end.wal.reached.db_sequence, end.wal.reached.consensus_sequence], [s.finalSeq.db, s.finalSeq.consensus], 'every batch after the base');
  t.equal(end.wal.batches, 9, 'B (3 batches), block 1, the mark, C (2), D, block 2');
  t.ok(Date.parse(end.wal.reached.commit_time!) >= s.T, 'commit time reached is reported');
  t.equal(end.wal.new_timeline.timeline, 2);
  t.equal(end.wal.new_timeline.history_archived, true);
  const stored = await GutsStore.open(path.join(dir, 'end'), { readOnly: true });
  t.same(await stored.counts(), s.final, 'counts exactly as the source');
  t.same(await stored.consensusInfo(), { finalizedHeight: 2, blocks: 3 });
  await stored.close();
  const vr = cli(['verify', '--data-dir', path.join(dir, 'end'), '--full', '--json']);
  t.equal(vr.status, 0, vr.stdout + vr.stderr);

  const m = await restore('mark', { mark: 'm1' });
  t.same(await present(path.join(dir, 'mark'), all), [...s.A, ...s.B].map(() => true).concat([...s.C, ...s.D].map(() => false)));
  t.equal(m.wal.reached.db_sequence, s.markSeq, 'up to and including the mark batch');

  const q = await restore('seq', { seq: s.cSeq });
  t.same(await present(path.join(dir, 'seq'), s.C), [true, false], 'the batch holding the sequence, none after');

  const tm = await restore('time', { time_ms: s.T });
  t.same(await present(path.join(dir, 'time'), all), [...s.A, ...s.B, ...s.C].map(() => true).concat([false]));
  t.ok(Date.parse(tm.wal.reached.commit_time!) <= s.T);
  const ts = await GutsStore.open(path.join(dir, 'time'), { readOnly: true });
  t.same(await ts.consensusInfo(), { finalizedHeight: 1, blocks: 2 }, 'consensus stops at the time too');
  await ts.close();

  // each restore started its own timeline
  t.same(
    [m, q, tm].map((r) => r.wal.new_timeline.timeline),
    [3, 4, 5],
  );
  const h = decodeHistory(fs.readFileSync(path.join(s.archive, '00000003.history')), '00000003.history');
  t.same(h.branch, { segment: 4, db_seq: s.markSeq, consensus_seq: m.wal.reached.consensus_sequence, prev_checksum: h.branch.prev_checksum });
  t.equal(h.parent_timeline, 1);
  const state = JSON.parse(fs.readFileSync(path.join(dir, 'mark', 'wal', 'state.json'), 'utf8'));
  t.match(state, { format: 'guts-wal-state', timeline: 3, next_segment: 4, db_next_seq: s.markSeq + 1, prev_checksum: h.branch.prev_checksum });
  t.notOk(fs.existsSync(path.join(dir, 'mark', '.wal-fetch')), 'no fetch leftovers in the data dir');
});

t.test('targets not reached, gaps, damage, foreign segments: exit 1 naming the segment, target untouched', async (t) => {
  const dir = t.testdir();
  const s = await scenario(dir);
  const config = path.join(dir, 'config.yaml');
  fs.writeFileSync(config, `wal:\n  restore_command: cp ${s.archive}/%f %p\n  archive_dir: ${s.archive}\n`);
  const env = { GUTS_CONFIG: config };
  const target = path.join(dir, 'target');
  fs.mkdirSync(target);
  fs.writeFileSync(path.join(target, 'keep'), 'old data');
  const untouched = () => t.same(fs.readdirSync(target), ['keep'], 'target untouched') && t.same(fs.readdirSync(dir).filter((n) => n.includes('staging')), []);
  const restore = (...extra: string[]) => cli(['backup', 'restore', s.base, '--target', target, '--force-any', '--wal', '--json', ...extra], { env });

  let r = restore('--until-seq', String(s.finalSeq.db + 1));
  t.equal(r.status, 1, 'a sequence beyond the archive');
  t.match(r.stderr, /GUTS_WAL_TARGET: .*00000001-0000000000000005\.gwal/);
  untouched();
  r = restore('--until-mark', 'no-such-mark');
  t.equal(r.status, 1);
  t.match(r.stderr, /GUTS_WAL_TARGET/);
  r = restore('--until', new Date(Date.now() + 3600_000).toISOString());
  t.equal(r.status, 1);
  r = restore('--until-seq', '1');
  t.equal(r.status, 2, 'a sequence inside the base is a usage error');
  r = cli(['backup', 'restore', s.base, '--target', target, '--until-seq', '5'], { env });
  t.equal(r.status, 2, '--until without --wal');
  untouched();

  const seg3 = path.join(s.archive, segmentName(1, 3));
  const saved = fs.readFileSync(seg3);
  // a missing segment (seg 4 behind it is archived): a gap, not an end
  fs.renameSync(seg3, seg3 + '.away');
  r = restore();
  t.equal(r.status, 1);
  t.match(r.stderr, /GUTS_WAL_GAP: .*00000001-0000000000000003\.gwal is missing.*00000001-0000000000000004\.gwal/);
  untouched();
  let v = cli(['wal', 'verify', '--from', s.base], { env });
  t.equal(v.status, 1);
  t.match(v.stderr, /GUTS_WAL_GAP: .*0000000000000003\.gwal/);
  // a restore to a target before the gap still works
  r = restore('--until-seq', String(s.markSeq - 1));
  t.equal(r.status, 0, r.stderr);
  t.equal(JSON.parse(r.stdout).wal.reached.segment, segmentName(1, 2));
  fs.rmSync(target, { recursive: true });
  fs.mkdirSync(target);
  fs.writeFileSync(path.join(target, 'keep'), 'old data');
  fs.renameSync(seg3 + '.away', seg3);

  // a flipped byte
  const flipped = Buffer.from(saved);
  flipped[Math.floor(flipped.length / 2)] ^= 0x10;
  fs.writeFileSync(seg3, flipped);
  r = restore();
  t.equal(r.status, 1);
  t.match(r.stderr, /GUTS_CORRUPT: segment 00000001-0000000000000003\.gwal/);
  untouched();
  v = cli(['wal', 'verify', '--from', s.base, '--json'], { env });
  t.equal(v.status, 1);

  // a segment of another history under this name: a valid segment of a different store, same numbers
  const other = path.join(dir, 'other');
  fs.mkdirSync(path.join(other, 'wal'), { recursive: true });
  const os2 = await GutsStore.open(other, { create: true });
  const c2 = new SegmentCutter(os2, path.join(dir, 'other-archive'));
  for (let i = 0; i < 3; i++) {
    await writeBlobs(os2, [`x${i}`]);
    await c2.cut();
  }
  await os2.close();
  fs.copyFileSync(path.join(dir, 'other-archive', segmentName(1, 3)), seg3);
  r = restore();
  t.equal(r.status, 1);
  t.match(r.stderr, /GUTS_WAL_GAP: .*00000001-0000000000000003\.gwal/);
  untouched();
  // and a segment of timeline 2 renamed into timeline 1
  fs.copyFileSync(path.join(dir, 'other-archive', segmentName(1, 3)), path.join(dir, 'x'));
  const tl2 = new SegmentCutter(await GutsStore.open(other), path.join(dir, 'tl2-archive'), { timeline: 2, next_segment: 3, db_next_seq: 1, consensus_next_seq: 1, prev_checksum: '0'.repeat(64) });
  await tl2.cut();
  await tl2.store.close();
  fs.copyFileSync(path.join(dir, 'tl2-archive', segmentName(2, 3)), seg3);
  r = restore();
  t.equal(r.status, 1);
  t.match(r.stderr, /GUTS_CORRUPT: segment 00000001-0000000000000003\.gwal.*timeline 2/);
  v = cli(['wal', 'verify', '--from', s.base], { env });
  t.equal(v.status, 1);
  untouched();

  fs.writeFileSync(seg3, saved);
  v = cli(['wal', 'verify', '--from', s.base, '--json'], { env });
  t.equal(v.status, 0, v.stderr);
  const rep = JSON.parse(v.stdout);
  t.match(rep, { status: 'complete', segments: 3, marks: ['m1'], last_segment: segmentName(1, 4), end_of_archive: segmentName(1, 5), timelines: [1] });
  v = cli(['wal', 'verify'], { env });
  t.equal(v.status, 0, v.stderr);
  t.match(v.stdout, /Segments: 4 .*Status: COMPLETE/s);
});

t.test('timelines: restore, write more, restore again to a point on the new timeline; both histories intact', async (t) => {
  const dir = t.testdir();
  const s = await scenario(dir);
  const config = cfg(s.archive);
  // restore to the mark: timeline 2 branches off inside segment 3
  const r1 = await restorePointInTime({ file: s.base, target: path.join(dir, 'tl2'), config, until: { mark: 'm1' } });
  t.equal(r1.wal.new_timeline.timeline, 2);
  t.same(fs.readdirSync(path.join(dir, 'tl2', 'wal', 'pending')), [], 'history archived, not left pending');
  // the restored node writes more on timeline 2 (its archiver continues from state.json)
  const store2 = await GutsStore.open(path.join(dir, 'tl2'));
  const cut2 = SegmentCutter.fromStateFile(store2, s.archive);
  const E1 = await writeBlobs(store2, ['e1']);
  t.equal(await cut2.cut(), segmentName(2, 4));
  const e1Seq = store2.native.sequences().db;
  const E2 = await writeBlobs(store2, ['e2']);
  t.equal(await cut2.cut(), segmentName(2, 5));
  await store2.close();
  const old = [...s.A, ...s.B];
  const lost = [...s.C, ...s.D];

  // latest: timeline 1 to the branch point, then timeline 2
  const r2 = await restorePointInTime({ file: s.base, target: path.join(dir, 'latest'), config, until: null });
  t.same(r2.wal.timelines_followed, [1, 2]);
  t.same(await present(path.join(dir, 'latest'), [...old, ...E1, ...E2, ...lost]), [...old, ...E1, ...E2].map(() => true).concat(lost.map(() => false)));
  t.equal(r2.wal.new_timeline.timeline, 3);
  // a point on timeline 2
  const r3 = await restorePointInTime({ file: s.base, target: path.join(dir, 'on-tl2'), config, until: { seq: e1Seq } });
  t.same(await present(path.join(dir, 'on-tl2'), [...E1, ...E2, ...lost]), [true, false, ...lost.map(() => false)]);
  t.equal(r3.wal.new_timeline.timeline, 4);
  // the old history is intact: timeline 1 to its end
  const r4 = await restorePointInTime({ file: s.base, target: path.join(dir, 'tl1'), config, until: null, timeline: 1 });
  t.same(await present(path.join(dir, 'tl1'), [...old, ...lost, ...E1]), [...old, ...lost].map(() => true).concat([false]));
  t.same(r4.wal.timelines_followed, [1]);
  // a later restore prefers a timeline whose segments exist: timelines 3 and 4 never archived one
  const v = await verifyWalArchive({ config, from: s.base });
  t.same(v.timelines, [1, 2]);
  t.equal(v.last_segment, segmentName(2, 5));
  // a timeline that does not descend from the base is refused
  await t.rejects(restorePointInTime({ file: s.base, target: path.join(dir, 'x'), config, until: null, timeline: 9 }), { code: 'GUTS_INVALID_ARGUMENT' });
  t.notOk(fs.existsSync(path.join(dir, 'x')));
  // a timeline that restarts the chain (a node's gap, a replaced store) is not followed from this base
  const gapTl = 5;
  fs.writeFileSync(
    path.join(s.archive, `0000000${gapTl}.history`),
    encodeHistory({ timeline: gapTl, parent_timeline: 2, branch: { segment: 6, db_seq: e1Seq + 50, consensus_seq: 9, prev_checksum: '0'.repeat(64) }, reason: 'gap', created: new Date().toISOString() }),
  );
  fs.writeFileSync(path.join(s.archive, segmentName(gapTl, 6)), 'present');
  const notes: string[] = [];
  const r5 = await restorePointInTime({ file: s.base, target: path.join(dir, 'skip-gap'), config, until: null, log: (l) => notes.push(l) });
  t.same(r5.wal.timelines_followed, [1, 2]);
  t.match(notes.join('\n'), /not following timeline 5: .*restarts the hash chain/);
  t.equal(r5.wal.new_timeline.timeline, 6);
  // asked for explicitly, it is walked (and its stand-in first segment refused)
  await t.rejects(restorePointInTime({ file: s.base, target: path.join(dir, 'gap-explicit'), config, until: null, timeline: gapTl }), { code: 'GUTS_CORRUPT' });
  fs.rmSync(path.join(s.archive, segmentName(gapTl, 6)));

  // a broken branch point: timeline 2's first segment missing while its second is there
  fs.renameSync(path.join(s.archive, segmentName(2, 4)), path.join(dir, 'away'));
  await t.rejects(restorePointInTime({ file: s.base, target: path.join(dir, 'y'), config, until: null, timeline: 2 }), { code: 'GUTS_WAL_GAP' });
  t.notOk(fs.existsSync(path.join(dir, 'y')));
});

t.test('SIGINT during the replay: exit 130, the restore commands killed, target untouched, nothing left', async (t) => {
  const dir = t.testdir();
  const s = await scenario(dir);
  const config = path.join(dir, 'config.yaml');
  // a slow archive: each fetch takes a while, so the signal lands mid-replay
  fs.writeFileSync(config, `wal:\n  restore_command: sleep 1 && cp ${s.archive}/%f %p\n`);
  const target = path.join(dir, 'target');
  const child = spawn(process.execPath, [BIN, 'backup', 'restore', s.base, '--wal', '--prefetch', '1', '--target', target], { env: { ...process.env, GUTS_CONFIG: config }, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  await sleep(2500);
  child.kill('SIGINT');
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  t.equal(code, 130, err);
  t.match(err, /GUTS_CANCELLED/);
  t.notOk(fs.existsSync(target), 'target untouched');
  t.same(fs.readdirSync(dir).filter((n) => n.includes('staging')), [], 'staging removed');

  // kill -9 mid-replay: the target stays untouched, the next run removes the dead restore's staging dir
  const killed = spawn(process.execPath, [BIN, 'backup', 'restore', s.base, '--wal', '--prefetch', '1', '--target', target], { env: { ...process.env, GUTS_CONFIG: config }, stdio: 'ignore' });
  await sleep(2500);
  killed.kill('SIGKILL');
  await new Promise((resolve) => killed.on('exit', resolve));
  t.notOk(fs.existsSync(target), 'target untouched after kill -9');
  t.equal(fs.readdirSync(dir).filter((n) => n.includes('staging')).length, 1, 'the dead restore left its staging dir');

  // only a restore_command, nowhere to archive the history: it waits in wal/pending/ for the node
  fs.writeFileSync(config, `wal:\n  restore_command: cp ${s.archive}/%f %p\n`);
  const r = cli(['backup', 'restore', s.base, '--wal', '--target', target, '--json'], { env: { GUTS_CONFIG: config } });
  t.equal(r.status, 0, r.stderr);
  t.match(JSON.parse(r.stdout).wal.new_timeline, { timeline: 2, history_archived: false });
  t.match(r.stderr, /could not archive 00000002\.history/);
  t.same(fs.readdirSync(path.join(target, 'wal', 'pending')), ['00000002.history']);
  t.equal(JSON.parse(r.stdout).removed_leftovers.length, 1, 'leftover of the killed restore removed');
  t.same(fs.readdirSync(dir).filter((n) => n.includes('staging')), []);
});

t.test('targets inside the base backup are refused (the base cannot be rolled back)', async (t) => {
  const dir = t.testdir();
  const src = path.join(dir, 'src');
  fs.mkdirSync(path.join(src, 'wal'), { recursive: true });
  const store = await GutsStore.open(src, { create: true });
  const archive = path.join(dir, 'archive');
  const cutter = new SegmentCutter(store, archive);
  await writeBlobs(store, ['x']);
  const before = Date.now();
  await sleep(30);
  await native.walMark(store.native, 'in-base');
  await writeBlobs(store, ['x2']);
  const base = await baseBackup(store, cutter, dir, 'base.tar.zst'); // segment 1 is still open: it will hold x, the mark, x2 and y
  await sleep(30);
  const Y = await writeBlobs(store, ['y']);
  await cutter.cut();
  await store.close();
  const config = cfg(archive);
  await t.rejects(restorePointInTime({ file: base, target: path.join(dir, 'a'), config, until: { mark: 'in-base' } }), { code: 'GUTS_INVALID_ARGUMENT' });
  await t.rejects(restorePointInTime({ file: base, target: path.join(dir, 'b'), config, until: { time_ms: before } }), { code: 'GUTS_INVALID_ARGUMENT' });
  t.notOk(fs.existsSync(path.join(dir, 'a')) || fs.existsSync(path.join(dir, 'b')));
  const r = await restorePointInTime({ file: base, target: path.join(dir, 'c'), config, until: null });
  t.equal(r.wal.segments, 1);
  t.same(await present(path.join(dir, 'c'), Y), [true], 'batches of the base in the segment are skipped, the rest replayed');

  // nothing archived after a base: the restore is the base, on a new timeline chained to the segment before it
  const again = await GutsStore.open(src);
  const base2 = await baseBackup(again, new SegmentCutter(again, archive, { ...cutter.state }), dir, 'base2.tar.zst');
  await again.close();
  fs.writeFileSync(path.join(dir, 'config.yaml'), `wal:\n  archive_dir: ${archive}\n`);
  const out = cli(['backup', 'restore', base2, '--wal', '--target', path.join(dir, 'd')], { env: { GUTS_CONFIG: path.join(dir, 'config.yaml') } });
  t.equal(out.status, 0, out.stderr);
  t.match(out.stderr, /WAL: 0 batches from 0 segments.*\n.*Reached: db sequence \d+, consensus \d+, last commit \(none after the base\).*\n.*New timeline: 3 \(00000003\.history archived\)/);
  const h = decodeHistory(fs.readFileSync(path.join(archive, '00000003.history')), '00000003.history');
  t.same(h.branch, { segment: 2, db_seq: h.branch.db_seq, consensus_seq: h.branch.consensus_seq, prev_checksum: readSegmentHeader(fs.readFileSync(path.join(archive, segmentName(1, 1)))).checksum });
});
