// `guts-node maintenance enter|exit` against a real node: writes stop with 503 +
// Retry-After, reads go on, a copy of the data dir taken in maintenance (what an
// LVM/ZFS snapshot sees) opens with everything acknowledged, auto-exit.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { connectNode } from '../src/node-client';
import { dataDirLayout, GutsStore } from '../src/store';
import { cli, metric, pushObjects, request, sleep, startNode } from './lib/node-proc';

const blob = (s: string) => ({ type: 'blob', data: Buffer.from(s) });

t.test('maintenance enter / exit: 503 with Retry-After, reads work, snapshot-consistent data dir', async (t) => {
  const root = t.testdir();
  const dataDir = path.join(root, 'data');
  const node = await startNode(dataDir);
  t.teardown(() => node.stop());

  const before = await pushObjects(node.url, 'ops/snap', [blob('a'), blob('b'), blob('c')]);
  t.equal(before.status, 200);
  const ids: string[] = before.json().ids;

  const enter = cli(['maintenance', 'enter', '--timeout', '2m', '--data-dir', dataDir]);
  t.equal(enter.code, 0, enter.stderr);
  t.match(enter.stdout, /^maintenance mode on \(node pid \d+\): writes paused, stores flushed and synced in [\d.]+ ms; ends automatically at \S+Z/);

  const w = await pushObjects(node.url, 'ops/snap', [blob('d')]);
  t.equal(w.status, 503, 'writes refused in maintenance');
  t.equal(w.json().error.code, 'GUTS_MAINTENANCE');
  const retry = Number(w.headers['retry-after']);
  t.ok(retry >= 100 && retry <= 120, `Retry-After is the time left (${retry}s)`);
  const r = await request(`${node.url}/api/objects/${ids[0]}`);
  t.equal(r.status, 200, 'reads keep working');
  t.equal(r.body.toString(), 'a');
  const ready = await request(node.url + '/health/ready');
  t.equal(ready.status, 200, 'still ready (reads)');
  t.equal(ready.json().checks.maintenance.active, true);
  t.equal(ready.json().checks.writes.status, 'down');
  t.equal(metric((await request(node.url + '/metrics')).body.toString(), 'guts_maintenance'), 1);

  const c = (await connectNode(dataDir))!;
  await t.rejects(c.putObjects('ops/snap', [blob('e')]), { code: 'GUTS_MAINTENANCE' }, 'admin-socket writes refused too');
  t.equal((await c.status()).maintenance, true);
  const st = JSON.parse(cli(['status', '--json', '--data-dir', dataDir]).stdout);
  t.equal(st.maintenance.active, true);
  t.match(cli(['status', '--data-dir', dataDir]).stdout, /^Maintenance: ON \(writes paused until /m);

  // What a file-system snapshot sees now: copy db/ and consensus/ and open the copy.
  // The WAL files are left out on purpose: the memtables were flushed, so the
  // SST files alone must hold everything acknowledged.
  const l = dataDirLayout(dataDir);
  const snap = path.join(root, 'snap');
  const noWal = (src: string) => !/\d+\.log$/.test(src);
  fs.cpSync(l.db, path.join(snap, 'db'), { recursive: true, filter: noWal });
  fs.cpSync(l.consensus, path.join(snap, 'consensus'), { recursive: true, filter: noWal });
  const s = await GutsStore.open(snap, { readOnly: true });
  t.same(await s.hasObjects(ids), [true, true, true], 'the snapshot holds every acknowledged object');
  t.equal((await s.counts()).blob, 3);
  await s.close();
  t.ok(fs.readdirSync(l.db).some((f) => f.endsWith('.sst')), 'memtables were flushed to SST files');
  // a checkpoint (hot backup) still works in maintenance: it does not write data
  const cp = await c.checkpoint({ db: true, consensus: true });
  t.equal(cp.counts.blob, 3);
  await c.releaseCheckpoint(cp.id);
  c.close();

  const again = cli(['maintenance', 'enter', '--timeout', '5m', '--data-dir', dataDir]);
  t.match(again.stdout, /^maintenance mode extended/);

  const exit = cli(['maintenance', 'exit', '--data-dir', dataDir]);
  t.equal(exit.code, 0, exit.stderr);
  t.match(exit.stdout, /^maintenance mode off \(node pid \d+\): writes resumed$/m);
  const after = await pushObjects(node.url, 'ops/snap', [blob('d')]);
  t.equal(after.status, 200, 'writes succeed after exit');
  t.equal(metric((await request(node.url + '/metrics')).body.toString(), 'guts_maintenance'), 0);
  const twice = cli(['maintenance', 'exit', '--json', '--data-dir', dataDir]);
  t.equal(twice.code, 0);
  t.equal(JSON.parse(twice.stdout).was_active, false, 'exit when not in maintenance is harmless');
  t.match(node.stderr(), /entered maintenance mode/);
  t.match(node.stderr(), /left maintenance mode, writes resumed/);
});

t.test('maintenance ends by itself after the timeout; in-flight waiters are refused, not lost', async (t) => {
  const dataDir = path.join(t.testdir(), 'data');
  const node = await startNode(dataDir, [], {});
  t.teardown(() => node.stop());
  const enter = cli(['maintenance', 'enter', '--timeout', '1s', '--json', '--data-dir', dataDir]);
  t.equal(enter.code, 0, enter.stderr);
  const j = JSON.parse(enter.stdout);
  t.equal(j.maintenance, true);
  t.ok(Date.parse(j.until) - Date.now() <= 1000);
  t.equal((await pushObjects(node.url, 'a/b', [blob('x')])).status, 503);
  await sleep(1300);
  t.equal((await pushObjects(node.url, 'a/b', [blob('x')])).status, 200, 'writes work again without an exit');
  t.match(node.stderr(), /maintenance timeout reached/);
  t.equal(JSON.parse(cli(['status', '--json', '--data-dir', dataDir]).stdout).maintenance.active, false);
});

t.test('maintenance and status without a running node', async (t) => {
  const dataDir = path.join(t.testdir(), 'data');
  for (const sub of ['enter', 'exit']) {
    const r = cli(['maintenance', sub, '--data-dir', dataDir]);
    t.equal(r.code, 2, `maintenance ${sub}: exit 2`);
    t.match(r.stderr, /^guts-node: GUTS_NOT_RUNNING: no node is running on /);
  }
  const bad = cli(['maintenance', 'enter', '--timeout', 'soon', '--data-dir', dataDir]);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /^guts-node: GUTS_USAGE: maintenance enter: option '--timeout <duration>' argument 'soon' is invalid/, 'a bad value is a usage error');
  const st = cli(['status', '--data-dir', dataDir]);
  t.equal(st.code, 0);
  t.match(st.stdout, /^Node: not running$/m);
  t.match(st.stdout, /does not exist/);

  // a stopped store with a last-backup record: status still reports what it can
  const s = await GutsStore.open(dataDir);
  await s.putObjects('x/y', [blob('1'), blob('2')]);
  await s.close();
  fs.writeFileSync(dataDirLayout(dataDir).lastBackup, JSON.stringify({ file: '/b/x.tar.zst', size_bytes: 99, created: new Date().toISOString(), kind: 'full' }));
  const j = JSON.parse(cli(['status', '--json', '--data-dir', dataDir]).stdout);
  t.equal(j.running, false);
  t.equal(j.counts.blob, 2);
  t.equal(j.last_backup.size_bytes, 99);
  t.equal(j.maintenance, null);
  // held by another process (not a node): no counts, says who holds it
  const holder = await GutsStore.open(dataDir);
  t.teardown(() => holder.close());
  const held = JSON.parse(cli(['status', '--json', '--data-dir', dataDir]).stdout);
  t.equal(held.counts, null);
  t.match(held.notes.join('\n'), new RegExp(`held by process ${process.pid}`));
});
