// The node's WAL archiver with real node processes and real cp-based commands.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { cli, metric, pushObjects, request, sleep, startNode, stopAtEnd, waitFor } from '../lib/node-proc';
import { GutsStore } from '../../src/store';
import { decodeHistory, encodeHistory, ZERO_CHECKSUM } from '../../src/wal/segment';
import { readArchive, occurrences, walConfig } from './lib';

const blob = (s: string) => [{ type: 'blob', data: Buffer.from(s) }];
// The commands copy to a temp name and rename, so a test never reads a half-copied segment.
const segments = (dir: string) => fs.readdirSync(dir).filter((f) => f.endsWith('.gwal'));

t.test('segments reach the archive within archive_timeout; status, mark, metrics, backup position', async (t) => {
  const dir = t.testdir({ archive: {} });
  const archive = path.join(dir, 'archive');
  const data = path.join(dir, 'data');
  const config = walConfig(dir, { archive_command: `cp %p ${archive}/.%f.tmp && mv ${archive}/.%f.tmp ${archive}/%f`, archive_timeout: '500ms' });
  const env = { GUTS_CONFIG: config };
  const node = await startNode(data, [], env);
  t.teardown(() => node.stop());
  for (let i = 0; i < 5; i++) t.equal((await pushObjects(node.url, 'a/b', blob(`first ${i}`))).status, 200);
  const wrote = Date.now();
  await waitFor(() => segments(archive).length > 0, 5000, 'a segment in the archive');
  const took = Date.now() - wrote;
  t.ok(took < 500 + 1500, `archived ${took} ms after the last write (archive_timeout 500ms)`);
  let a = await readArchive(archive);
  for (let i = 0; i < 5; i++) t.equal(occurrences(a.records, Buffer.from(`first ${i}`)), 1, `write ${i} archived once`);
  t.equal(a.segments[0].db.first, 1, 'archiving from the first batch of a new store');

  // nothing written: no new segment
  const count = segments(archive).length;
  await sleep(1200);
  t.equal(segments(archive).length, count, 'no segment without writes');

  const mark = cli(['wal', 'mark', 'before-migration', '--json', '--data-dir', data], env);
  t.equal(mark.code, 0, mark.stderr);
  const m = JSON.parse(mark.stdout);
  const again = cli(['wal', 'mark', 'before-migration', '--data-dir', data], env);
  t.equal(again.code, 2, 'a second restore point of one name is refused (--until-mark would stop at the first)');
  t.match(again.stderr, /^guts-node: GUTS_EXISTS: restore point before-migration already exists/);
  t.match(m, { name: 'before-migration', seq: Number, time: String, segment: /^00000001-[0-9a-f]{16}\.gwal$/ });
  await waitFor(() => fs.existsSync(path.join(archive, m.segment)), 3000, 'the mark segment archived');
  a = await readArchive(archive);
  t.same(a.records.filter((r) => r.mark).map((r) => [r.mark, r.seq]), [['before-migration', m.seq]]);
  t.equal(cli(['wal', 'mark', 'bad name', '--data-dir', data], env).code, 2);

  const st = cli(['wal', 'status', '--json', '--data-dir', data], env);
  t.equal(st.code, 0, st.stderr);
  const s = JSON.parse(st.stdout);
  t.match(s, { running: true, archiving: true, timeline: 1, pending_segments: 0, pending_bytes: 0, archive_failures_total: 0, last_error: null, backlog: false });
  t.equal(s.archived_segments_total, a.segments.length);
  t.equal(s.last_archived.name, a.names[a.names.length - 1]);

  const metrics = (await request(node.url + '/metrics')).body.toString();
  t.equal(metric(metrics, 'guts_wal_archived_segments_total'), a.segments.length);
  t.equal(metric(metrics, 'guts_wal_pending_segments'), 0);
  t.equal(metric(metrics, 'guts_wal_archive_failures_total'), 0);
  t.ok(metric(metrics, 'guts_wal_last_archived_timestamp')! > Date.now() / 1000 - 60);
  t.equal(metric(metrics, 'guts_wal_archive_lag_seconds'), 0);

  // a hot backup records where replay starts; backup verify prints it
  const out = path.join(dir, 'base.tar.zst');
  const b = cli(['backup', 'create', '--hot', '--output', out, '--data-dir', data], env);
  t.equal(b.code, 0, b.stderr);
  const v = cli(['backup', 'verify', out, '--json'], env);
  t.equal(v.code, 0, v.stderr);
  const wal = JSON.parse(v.stdout).wal;
  t.match(wal, { timeline: 1, segment: a.segments.length + 1 });
  t.equal(wal.db_seq, a.records.filter((r) => r.db === 'db').map((r) => r.seq + r.count - 1).pop());
  t.match(cli(['backup', 'verify', out], env).stdout, new RegExp(`^WAL: timeline 1, segment ${wal.segment}, db seq ${wal.db_seq}, consensus seq 0$`, 'm'));
  const ready = (await request(node.url + '/health/ready')).json();
  t.notOk(ready.checks.wal.note, 'the base backup cleared the note');

  t.same(await node.stop(), { code: 0, signal: null });
  const off = cli(['wal', 'status', '--json', '--data-dir', data], env);
  t.equal(off.code, 0, off.stderr);
  const offline = JSON.parse(off.stdout);
  t.match(offline, { running: false, archiving: false, timeline: 1, needs_base_backup: false });
  // without a node the position comes from state.json: the segment the next start opens
  const cold = path.join(dir, 'cold.tar.zst');
  t.equal(cli(['backup', 'create', '--output', cold, '--data-dir', data], env).code, 0);
  const cw = JSON.parse(cli(['backup', 'verify', cold, '--json'], env).stdout).wal;
  t.same(cw, { timeline: 1, segment: offline.db_next_seq > 0 ? JSON.parse(fs.readFileSync(path.join(data, 'wal', 'state.json'), 'utf8')).next_segment : -1, db_seq: offline.db_next_seq - 1, consensus_seq: offline.consensus_next_seq - 1 });
  t.equal(cli(['wal', 'status', '--data-dir', path.join(dir, 'nowhere')], env).code, 2, 'no archiving ever: GUTS_NOT_FOUND');
});

t.test('an archive command failing for 30 s, then recovering: retried with backoff, nothing lost, in order', async (t) => {
  const dir = t.testdir({ archive: {} });
  const archive = path.join(dir, 'archive');
  const flag = path.join(dir, 'archive-up');
  const data = path.join(dir, 'data');
  const config = walConfig(dir, { archive_command: `test -e ${flag} || { echo "archive is down" >&2; exit 3; }; cp %p ${archive}/.%f.tmp && mv ${archive}/.%f.tmp ${archive}/%f`, archive_timeout: '300ms' });
  const node = await startNode(data, [], { GUTS_CONFIG: config });
  t.teardown(() => node.stop());
  const acked: string[] = [];
  const started = Date.now();
  let i = 0;
  while (Date.now() - started < 30_000) {
    const body = `<while down ${i++}>`;
    if ((await pushObjects(node.url, 'a/b', blob(body))).status === 200) acked.push(body);
    await sleep(50);
  }
  t.equal(segments(archive).length, 0, 'nothing archived while the command fails');
  const metrics = (await request(node.url + '/metrics')).body.toString();
  t.ok(metric(metrics, 'guts_wal_archive_failures_total')! >= 4, `failures counted (${metric(metrics, 'guts_wal_archive_failures_total')})`);
  t.ok(metric(metrics, 'guts_wal_pending_segments')! > 5, 'segments wait in pending/');
  t.ok(metric(metrics, 'guts_wal_archive_lag_seconds')! >= 25, 'the lag grows');
  const s = JSON.parse(cli(['wal', 'status', '--json', '--data-dir', data], { GUTS_CONFIG: config }).stdout);
  t.match(s.last_error.message, /exited with status 3: archive is down/);
  t.match(node.stderr(), /archive is down/, "the command's stderr is in the node log");
  fs.writeFileSync(flag, '');
  // The next attempt can be up to 32 s away (the backoff after ~30 s of failures), and
  // ~90 segments then go one command each: on 2 busy cores that took over 70 s.
  await waitFor(async () => metric((await request(node.url + '/metrics')).body.toString(), 'guts_wal_pending_segments') === 0, 180_000, 'the backlog archived').catch((e) => {
    throw new Error(`${(e as Error).message}; node log:\n${node.stderr().split('\n').slice(-30).join('\n')}`);
  });
  await node.stop();
  const a = await readArchive(archive);
  t.ok(a.segments.length > 5, `${a.segments.length} segments, chained and continuous`);
  for (const body of acked) if (occurrences(a.records, Buffer.from(body)) !== 1) t.fail(`${body} archived ${occurrences(a.records, Buffer.from(body))} times`);
  t.pass(`${acked.length} acknowledged writes each archived exactly once`);
});

t.test('past wal.max_pending writes are refused with GUTS_WAL_BACKLOG, then resume', async (t) => {
  const dir = t.testdir({ archive: {} });
  const archive = path.join(dir, 'archive');
  const flag = path.join(dir, 'archive-up');
  const data = path.join(dir, 'data');
  const config = walConfig(dir, { archive_command: `test -e ${flag} && cp %p ${archive}/.%f.tmp && mv ${archive}/.%f.tmp ${archive}/%f`, archive_timeout: '200ms', max_pending: '2KiB' });
  const node = await startNode(data, [], { GUTS_CONFIG: config });
  t.teardown(() => node.stop());
  let refused: Awaited<ReturnType<typeof pushObjects>> | null = null;
  for (let i = 0; i < 200 && !refused; i++) {
    const r = await pushObjects(node.url, 'a/b', blob(`${i} `.repeat(100)));
    if (r.status !== 200) refused = r;
    else await sleep(100);
  }
  t.ok(refused, 'writes refused once the backlog passed 2KiB');
  t.equal(refused!.status, 503);
  t.equal(refused!.json().error.code, 'GUTS_WAL_BACKLOG');
  const ready = await request(node.url + '/health/ready');
  t.equal(ready.status, 200, 'reads still served');
  t.match(ready.json().checks, { writes: { status: 'down', reason: 'wal_backlog' }, wal: { status: 'down' } });
  fs.writeFileSync(flag, '');
  await waitFor(async () => (await pushObjects(node.url, 'a/b', blob('after recovery'))).status === 200, 70_000, 'writes to resume');
  t.equal((await request(node.url + '/health/ready')).json().checks.writes.status, 'up');
  await node.stop();
  const a = await readArchive(archive);
  t.equal(occurrences(a.records, Buffer.from('after recovery')), 1);
});

t.test('a gap in the WAL starts a new timeline, loudly, with its history archived', async (t) => {
  const dir = t.testdir({ archive: {} });
  const archive = path.join(dir, 'archive');
  const data = path.join(dir, 'data');
  const config = walConfig(dir, { archive_command: `cp %p ${archive}/.%f.tmp && mv ${archive}/.%f.tmp ${archive}/%f`, archive_timeout: '200ms' });
  const env = { GUTS_CONFIG: config };
  let node = stopAtEnd(t, await startNode(data, [], env));
  t.equal((await pushObjects(node.url, 'a/b', blob('<before the gap>'))).status, 200);
  await node.stop();
  // Writes the archiver never sees: WAL retention off (no wal/ dir), flushed, logs deleted.
  fs.renameSync(path.join(data, 'wal'), path.join(dir, 'wal-aside'));
  const store = await GutsStore.open(data);
  await store.putObjects('a/b', blob('<lost to the archive>'));
  await store.native.flush();
  await store.close();
  fs.renameSync(path.join(dir, 'wal-aside'), path.join(data, 'wal'));

  node = await startNode(data, [], env);
  t.teardown(() => node.stop());
  await waitFor(() => /WAL CONTINUITY BROKEN/.test(node.stderr()), 5000, 'the gap logged');
  t.equal((await pushObjects(node.url, 'a/b', blob('<after the gap>'))).status, 200);
  await waitFor(async () => metric((await request(node.url + '/metrics')).body.toString(), 'guts_wal_pending_segments') === 0 && fs.readdirSync(archive).some((f) => f.startsWith('00000002-')), 5000, 'timeline 2 archived');
  const metrics = (await request(node.url + '/metrics')).body.toString();
  t.equal(metric(metrics, 'guts_wal_timeline_switches_total'), 1);
  t.equal(metric(metrics, 'guts_wal_timeline'), 2);
  t.match((await request(node.url + '/health/ready')).json().checks.wal, { timeline: 2, note: /base backup/ });
  const history = decodeHistory(fs.readFileSync(path.join(archive, '00000002.history')), '00000002.history');
  t.match(history, { timeline: 2, parent_timeline: 1, reason: 'gap' });
  const one = await readArchive(archive, 1);
  const two = await readArchive(archive, 2);
  t.equal(occurrences(one.records, Buffer.from('<before the gap>')), 1);
  t.equal(occurrences([...one.records, ...two.records], Buffer.from('<lost to the archive>')), 0, 'the gap is real');
  t.equal(occurrences(two.records, Buffer.from('<after the gap>')), 1);
  t.equal(two.segments[0].segment, history.branch.segment, 'numbers continue across timelines');
  t.equal(two.segments[0].prevChecksum, ZERO_CHECKSUM, 'the chain restarts');
  t.equal(history.branch.db_seq, one.segments[one.segments.length - 1].db.last);
});

t.test('a store replaced under the archive (plain restore) archives on a new timeline, never over the old one', async (t) => {
  const dir = t.testdir({ archive: {} });
  const archive = path.join(dir, 'archive');
  const data = path.join(dir, 'data');
  const config = walConfig(dir, { archive_command: `cp %p ${archive}/.%f.tmp && mv ${archive}/.%f.tmp ${archive}/%f`, restore_command: `cp ${archive}/%f %p`, archive_timeout: '200ms' });
  const env = { GUTS_CONFIG: config };
  let node = stopAtEnd(t, await startNode(data, [], env));
  t.equal((await pushObjects(node.url, 'a/b', blob('<in the base>'))).status, 200);
  const base = path.join(dir, 'base.tar.zst');
  t.equal(cli(['backup', 'create', '--hot', '--output', base, '--data-dir', data], env).code, 0);
  t.equal((await pushObjects(node.url, 'a/b', blob('<after the base>'))).status, 200);
  await node.stop();
  const r = cli(['backup', 'restore', base, '--force', '--data-dir', data], env);
  t.equal(r.code, 0, r.stderr);
  node = await startNode(data, [], env);
  t.teardown(() => node.stop());
  // the restore replaced wal/ too: the archive is asked for its newest timeline
  t.match(node.stderr(), /archiving on a new timeline so no archived segment is overwritten/);
  t.equal((await pushObjects(node.url, 'a/b', blob('<on the restored store>'))).status, 200);
  await waitFor(() => fs.readdirSync(archive).some((f) => f.startsWith('00000002-')), 5000, 'timeline 2 archived');
  const one = await readArchive(archive, 1);
  const two = await readArchive(archive, 2);
  t.equal(occurrences(one.records, Buffer.from('<after the base>')), 1, 'the old history stays whole');
  t.equal(occurrences(two.records, Buffer.from('<on the restored store>')), 1, 'the new one goes to timeline 2');
  t.ok(fs.existsSync(path.join(archive, '00000002.history')));

  // the same with wal/ kept (copied back): the store's identity tells
  await node.stop();
  fs.renameSync(path.join(data, 'wal'), path.join(dir, 'wal-kept'));
  t.equal(cli(['backup', 'restore', base, '--force', '--data-dir', data], env).code, 0);
  fs.renameSync(path.join(dir, 'wal-kept'), path.join(data, 'wal'));
  node = stopAtEnd(t, await startNode(data, [], env));
  t.match(node.stderr(), /WAL CONTINUITY BROKEN.*store was replaced/);
  t.equal((await pushObjects(node.url, 'a/b', blob('<on timeline 3>'))).status, 200);
  await waitFor(() => fs.readdirSync(archive).some((f) => f.startsWith('00000003-')), 5000, 'timeline 3 archived');
  t.equal(occurrences((await readArchive(archive, 3)).records, Buffer.from('<on timeline 3>')), 1);
  t.equal(occurrences((await readArchive(archive, 2)).records, Buffer.from('<on the restored store>')), 1, 'timeline 2 intact');
});

t.test('RocksDB keeps obsolete WAL files until closed segments cover them, then they go', async (t) => {
  const dir = t.testdir({ archive: {} });
  const archive = path.join(dir, 'archive');
  const data = path.join(dir, 'data');
  const config = walConfig(dir, { archive_command: `cp %p ${archive}/.%f.tmp && mv ${archive}/.%f.tmp ${archive}/%f`, archive_timeout: '3s' });
  const env = { GUTS_CONFIG: config };
  const node = await startNode(data, [], env);
  t.teardown(() => node.stop());
  const logs = () => (fs.existsSync(path.join(data, 'db', 'archive')) ? fs.readdirSync(path.join(data, 'db', 'archive')).filter((f) => f.endsWith('.log')) : []);
  t.equal((await pushObjects(node.url, 'a/b', blob('<in the first log>'))).status, 200);
  // maintenance flushes the memtables: the log is obsolete for RocksDB
  t.equal(cli(['maintenance', 'enter', '--data-dir', data], env).code, 0);
  t.equal(cli(['maintenance', 'exit', '--data-dir', data], env).code, 0);
  t.equal(segments(archive).length, 0, 'segment still open');
  t.ok(logs().length >= 1, `kept in db/archive while not in a closed segment (${logs().join(' ')})`);
  t.equal((await pushObjects(node.url, 'a/b', blob('<in the next log>'))).status, 200);
  await waitFor(() => segments(archive).length > 0, 8000, 'the segment archived');
  await waitFor(() => logs().length === 0, 3000, 'db/archive trimmed');
  const a = await readArchive(archive);
  t.equal(occurrences(a.records, Buffer.from('<in the first log>')), 1);
  t.equal(occurrences(a.records, Buffer.from('<in the next log>')), 1);
});

t.test('a segment closes at wal.segment_size without waiting for the timeout', async (t) => {
  const dir = t.testdir({ archive: {} });
  const archive = path.join(dir, 'archive');
  const data = path.join(dir, 'data');
  const config = walConfig(dir, { archive_command: `cp %p ${archive}/.%f.tmp && mv ${archive}/.%f.tmp ${archive}/%f`, archive_timeout: '1h', segment_size: '64KiB' });
  const node = await startNode(data, [], { GUTS_CONFIG: config });
  t.teardown(() => node.stop());
  for (let i = 0; i < 12; i++) {
    const data = Buffer.from(`<big ${i}>` + randomBytes(12_000).toString('base64'));
    t.equal((await pushObjects(node.url, 'a/b', [{ type: 'blob', data }])).status, 200);
  }
  await waitFor(() => segments(archive).length >= 2, 5000, 'segments closed by size');
  const a = await readArchive(archive);
  for (const s of a.segments) t.ok(s.records.reduce((n, r) => n + r.data.length, 0) < 64 * 1024 + 20_000, `segment ${s.segment} about segment_size`);
});

t.test('the GUTS_WAL_BACKLOG message names the last error wal status shows, also when the backlog passed the limit before the first failure', async (t) => {
  const dir = t.testdir({ archive: {} });
  const archive = path.join(dir, 'archive');
  const data = path.join(dir, 'data');
  // a slow failing command: the backlog passes max_pending while its first attempt still runs
  const config = walConfig(dir, { archive_command: `sleep 3; echo "archive down %f" >&2; exit 3`, archive_timeout: '100ms', max_pending: '1KiB' });
  const node = await startNode(data, [], { GUTS_CONFIG: config });
  t.teardown(() => node.stop());
  let refused = false;
  for (let i = 0; i < 100 && !refused; i++) {
    refused = (await pushObjects(node.url, 'a/b', blob(randomBytes(600).toString('hex')))).status === 503;
    if (!refused) await sleep(50);
  }
  t.ok(refused, 'writes refused');
  let message = '';
  await waitFor(
    async () => {
      const r = await pushObjects(node.url, 'a/b', blob('x'));
      message = r.json().error.message as string;
      return !/last error: none/.test(message);
    },
    15_000,
    'the 503 message to name the failure',
  );
  const st = cli(['wal', 'status', '--json', '--data-dir', data], { GUTS_CONFIG: config });
  const fromStatus = (JSON.parse(st.stdout) as { last_error: { message: string } }).last_error.message;
  t.ok(message.endsWith(`last error: ${fromStatus}`), `${message} names ${fromStatus}`);
});

t.test('a gap never takes a timeline id a restore already claimed in the archive', async (t) => {
  const dir = t.testdir({ archive: {} });
  const archive = path.join(dir, 'archive');
  const data = path.join(dir, 'data');
  const config = walConfig(dir, { archive_command: `cp %p ${archive}/%f`, archive_dir: archive, archive_timeout: '200ms' });
  const env = { GUTS_CONFIG: config };
  let node = stopAtEnd(t, await startNode(data, [], env));
  t.equal((await pushObjects(node.url, 'a/b', blob('<before the gap>'))).status, 200);
  await waitFor(() => fs.readdirSync(archive).some((f) => f.startsWith('00000001-')), 5000, 'timeline 1 archived');
  await node.stop();
  // a test restore elsewhere claimed timeline 2
  const claimed = encodeHistory({ timeline: 2, parent_timeline: 1, branch: { segment: 2, db_seq: 1, consensus_seq: 0, prev_checksum: ZERO_CHECKSUM }, reason: 'restore', created: new Date().toISOString() });
  fs.writeFileSync(path.join(archive, '00000002.history'), claimed);
  fs.renameSync(path.join(data, 'wal'), path.join(dir, 'wal-aside'));
  const store = await GutsStore.open(data);
  await store.putObjects('a/b', blob('<lost to the archive>'));
  await store.native.flush();
  await store.close();
  fs.renameSync(path.join(dir, 'wal-aside'), path.join(data, 'wal'));
  node = await startNode(data, [], env);
  t.teardown(() => node.stop());
  await waitFor(() => /WAL CONTINUITY BROKEN/.test(node.stderr()), 5000, 'the gap logged');
  t.equal((await pushObjects(node.url, 'a/b', blob('<after the gap>'))).status, 200);
  await waitFor(() => fs.readdirSync(archive).some((f) => f.startsWith('00000003-')), 5000, 'timeline 3 archived');
  t.same(fs.readFileSync(path.join(archive, '00000002.history')), claimed, 'the claimed history is untouched');
  t.match(decodeHistory(fs.readFileSync(path.join(archive, '00000003.history')), '00000003.history'), { timeline: 3, parent_timeline: 1, reason: 'gap' });
  t.equal(metric((await request(node.url + '/metrics')).body.toString(), 'guts_wal_timeline'), 3);
});

t.test('a timeline id claimed in the archive while the gap history waited to be archived: renumbered to the next free id, its pending segments re-sealed', async (t) => {
  const dir = t.testdir({ archive: {} });
  const archive = path.join(dir, 'archive');
  const hold = path.join(dir, 'archive-down');
  const data = path.join(dir, 'data');
  // a no-overwrite cp (as the guide asks of an archive command); the archive is readable through wal.archive_dir
  const config = walConfig(dir, {
    archive_command: `test ! -e ${hold} || { echo "archive is down" >&2; exit 3; }; test ! -e ${archive}/%f || { echo "%f exists" >&2; exit 1; }; cp %p ${archive}/.%f.tmp && mv ${archive}/.%f.tmp ${archive}/%f`,
    archive_dir: archive,
    archive_timeout: '200ms',
  });
  const env = { GUTS_CONFIG: config };
  let node = stopAtEnd(t, await startNode(data, [], env));
  t.equal((await pushObjects(node.url, 'a/b', blob('<before the gap>'))).status, 200);
  await waitFor(() => fs.readdirSync(archive).some((f) => f.startsWith('00000001-')), 5000, 'timeline 1 archived');
  await node.stop();
  fs.renameSync(path.join(data, 'wal'), path.join(dir, 'wal-aside'));
  const store = await GutsStore.open(data);
  await store.putObjects('a/b', blob('<lost to the archive>'));
  await store.native.flush();
  await store.close();
  fs.renameSync(path.join(dir, 'wal-aside'), path.join(data, 'wal'));
  // The archive goes down; the node finds the gap, chooses timeline 2 (free when it asked), cannot archive its history.
  fs.writeFileSync(hold, '');
  node = await startNode(data, [], env);
  t.teardown(() => node.stop());
  await waitFor(() => /WAL CONTINUITY BROKEN/.test(node.stderr()), 5000, 'the gap logged');
  for (let i = 0; i < 3; i++) {
    t.equal((await pushObjects(node.url, 'a/b', blob(`<after the gap ${i}>`))).status, 200);
    await sleep(400); // each in its own segment
  }
  await waitFor(() => fs.readdirSync(path.join(data, 'wal', 'pending')).filter((f) => f.startsWith('00000002-')).length >= 2, 5000, 'timeline 2 segments pending');
  // Meanwhile a restore elsewhere claims timeline 2 in the archive.
  const claimed = encodeHistory({ timeline: 2, parent_timeline: 1, branch: { segment: 2, db_seq: 1, consensus_seq: 0, prev_checksum: ZERO_CHECKSUM }, reason: 'restore', created: new Date().toISOString() });
  fs.writeFileSync(path.join(archive, '00000002.history'), claimed);
  fs.rmSync(hold);
  await waitFor(async () => metric((await request(node.url + '/metrics')).body.toString(), 'guts_wal_pending_segments') === 0 && fs.readdirSync(archive).some((f) => f.startsWith('00000003-')), 15_000, 'timeline 3 archived');
  t.same(fs.readFileSync(path.join(archive, '00000002.history')), claimed, 'the claimed history is untouched');
  t.notOk(fs.readdirSync(archive).some((f) => f.startsWith('00000002-')), 'no segment archived on the taken id');
  t.notOk(fs.readdirSync(path.join(data, 'wal', 'pending')).some((f) => f.startsWith('00000002')), 'nothing of the taken id left pending');
  const history = decodeHistory(fs.readFileSync(path.join(archive, '00000003.history')), '00000003.history');
  t.match(history, { timeline: 3, parent_timeline: 1, reason: 'gap' });
  t.match(node.stderr(), /timeline id taken in the archive/);
  t.equal(metric((await request(node.url + '/metrics')).body.toString(), 'guts_wal_timeline'), 3);
  t.equal((await pushObjects(node.url, 'a/b', blob('<after the renumbering>'))).status, 200);
  await waitFor(async () => metric((await request(node.url + '/metrics')).body.toString(), 'guts_wal_pending_segments') === 0, 5000, 'archived');
  await node.stop();
  const three = await readArchive(archive, 3); // every checksum and the chain across the re-sealed and the new segments
  t.equal(three.segments[0].segment, history.branch.segment, 'numbers continue from the branch point');
  t.equal(three.segments[0].prevChecksum, ZERO_CHECKSUM, 'the chain restarts at the gap');
  for (let i = 0; i < 3; i++) t.equal(occurrences(three.records, Buffer.from(`<after the gap ${i}>`)), 1, `write ${i} after the gap archived once, on timeline 3`);
  t.equal(occurrences(three.records, Buffer.from('<after the renumbering>')), 1);
  t.equal(occurrences(three.records, Buffer.from('<lost to the archive>')), 0);
});
