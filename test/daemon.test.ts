// guts-node serve as a real process: HTTP API, admin socket, hot checkpoints
// under concurrent writers, leases, stale leftovers, clean shutdown.
import t from 'tap';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

import { withSocketPath } from '../src/daemon/protocol';
import { connectNode, requireNode } from '../src/node-client';
import { dataDirLayout, gitObjectId, GutsStore } from '../src/store';
import { BIN, cli, metric, pushObjects, request, sleep, startNode, stopAtEnd, waitFor } from './lib/node-proc';

const blob = (s: string) => ({ type: 'blob', data: Buffer.from(s) });

t.test('serve: health, object API, metrics, status, 0600 socket, second serve locked, SIGTERM clean', async (t) => {
  const dataDir = path.join(t.testdir(), 'data');
  const node = stopAtEnd(t, await startNode(dataDir));
  const l = dataDirLayout(dataDir);

  t.equal(fs.statSync(l.socket).mode & 0o777, 0o600, 'admin socket is 0600');
  t.ok(fs.statSync(l.socket).isSocket());
  t.equal(fs.readFileSync(l.pidFile, 'utf8').trim(), String(node.child.pid), 'pid file names the node');

  const live = await request(node.url + '/health/live');
  t.equal(live.status, 200);
  t.equal(live.json().status, 'up');
  const ready = await request(node.url + '/health/ready');
  t.same(ready.json(), { status: 'up', checks: { store: { status: 'up' }, maintenance: { status: 'up', active: false }, writes: { status: 'up' } } });
  const health = (await request(node.url + '/health')).json();
  t.equal(health.status, 'up');
  t.equal(health.checks.checkpoints.active, 0);

  // batch push with a ref; ids are git's
  const commitBody = Buffer.from('tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor a <a@b> 0 +0000\ncommitter a <a@b> 0 +0000\n\nfirst\n');
  const objs = [blob('hello\n'), blob('world\n'), { type: 'tree', data: Buffer.alloc(0) }, { type: 'commit', data: commitBody }];
  const commitId = gitObjectId('commit', commitBody);
  const r = await pushObjects(node.url, 'alice/demo', objs, [{ name: 'refs/heads/main', target: commitId }]);
  t.equal(r.status, 200, r.body.toString());
  t.same(r.json(), { ids: objs.map((o) => gitObjectId(o.type as 'blob', o.data)), added: 4 });
  t.equal(r.json().ids[0], 'ce013625030ba8dba906f756967f9e9ca394464a', 'git hash-object of "hello\\n"');
  const again = await pushObjects(node.url, 'alice/demo', objs.slice(0, 2));
  t.equal(again.json().added, 0, 'duplicates are no-ops');

  const got = await request(`${node.url}/api/objects/${commitId}`);
  t.equal(got.status, 200);
  t.equal(got.headers['x-git-type'], 'commit');
  t.same(got.body, commitBody);
  t.equal((await request(`${node.url}/api/objects/${'0'.repeat(40)}`)).status, 404);
  t.same((await request(`${node.url}/api/repos/alice/demo/refs`)).json(), { refs: [{ name: 'refs/heads/main', target: commitId }] });

  // bad requests
  const missingRef = await pushObjects(node.url, 'alice/demo', [], [{ name: 'refs/heads/x', target: 'f'.repeat(40) }]);
  t.equal(missingRef.status, 400);
  t.equal(missingRef.json().error.code, 'GUTS_INVALID_ARGUMENT', 'a ref to a missing object is refused');
  t.equal((await request(`${node.url}/api/repos/alice/demo/objects`, { method: 'POST', body: '{nope' })).status, 400);
  t.equal((await pushObjects(node.url, 'alice/demo', [{ type: 'blobby', data: Buffer.from('x') }])).status, 400);
  t.equal((await pushObjects(node.url, '..%2Fx/demo', [blob('x')])).status, 400, 'bad repository name');
  t.equal((await request(`${node.url}/api/objects/${commitId}`, { method: 'DELETE' })).status, 405);
  t.equal((await request(`${node.url}/nope`)).status, 404);

  // metrics
  let m = (await request(node.url + '/metrics')).body.toString();
  t.equal(metric(m, 'guts_up'), 1);
  t.equal(metric(m, 'guts_objects{type="blob"}'), 2);
  t.equal(metric(m, 'guts_objects{type="tree"}'), 1);
  t.equal(metric(m, 'guts_objects{type="commit"}'), 1);
  t.equal(metric(m, 'guts_repositories'), 1);
  t.equal(metric(m, 'guts_maintenance'), 0);
  t.equal(metric(m, 'guts_last_backup_timestamp'), 0, 'no backup yet: the backup-missing alert fires');
  t.ok(metric(m, 'guts_store_bytes{store="db"}')! > 0);
  t.match(m, /^# TYPE guts_objects gauge$/m);

  // recordBackup over the admin socket feeds last-backup.json and the metrics
  const c = await requireNode(dataDir);
  t.equal(c.node.pid, node.child.pid);
  const created = '2026-01-02T03:04:05.000Z';
  await c.recordBackup({ file: '/backup/guts-1.tar.zst', size_bytes: 12345, created, kind: 'hot', checksum: 'abc' });
  t.same(JSON.parse(fs.readFileSync(l.lastBackup, 'utf8')), { hot: { file: '/backup/guts-1.tar.zst', size_bytes: 12345, created, kind: 'hot', checksum: 'abc' } });
  m = (await request(node.url + '/metrics')).body.toString();
  t.equal(metric(m, 'guts_last_backup_timestamp'), Date.parse(created) / 1000);
  t.equal(metric(m, 'guts_backup_size_bytes'), 12345);
  await t.rejects(c.recordBackup({ file: 'x', size_bytes: 1, created: 'yesterday', kind: 'full' }), { code: 'GUTS_INVALID_ARGUMENT' });
  const st = await c.status();
  t.equal(st.pid, node.child.pid);
  t.equal(st.maintenance, false);
  t.equal(st.counts.blob, 2);
  t.equal(`http://${st.apiAddr}`, node.url);
  c.close();

  const status = cli(['status', '--json', '--data-dir', dataDir]);
  t.equal(status.code, 0, status.stderr);
  const sj = JSON.parse(status.stdout);
  t.equal(sj.running, true);
  t.equal(sj.pid, node.child.pid);
  t.equal(sj.via, 'node');
  t.equal(sj.counts.commit, 1);
  t.equal(sj.last_backup.file, '/backup/guts-1.tar.zst');
  t.ok(sj.store_bytes.db > 0);
  const text = cli(['status', '--data-dir', dataDir]);
  t.match(text.stdout, /^Node: running \(pid \d+, api http:\/\/127\.0\.0\.1:\d+/m);
  t.match(text.stdout, /^Objects: 2 blobs, 1 trees, 1 commits, 0 tags$/m);
  t.match(text.stdout, /^Last backup: 2026-01-02T03:04:05.000Z .*hot/m);

  // a second node on the same data dir
  const second = cli(['serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0']);
  t.equal(second.code, 3, 'exit 3 = locked');
  t.match(second.stderr, /GUTS_LOCKED/);

  const exit = await node.stop();
  t.same(exit, { code: 0, signal: null }, 'SIGTERM: clean exit 0');
  t.notOk(fs.existsSync(l.pidFile), 'pid file removed');
  t.notOk(fs.existsSync(l.socket), 'socket removed');
  t.match(node.stderr(), /shutting down reason="received SIGTERM"/);
  t.match(node.stderr(), /store closed/);

  t.equal(await connectNode(dataDir), null, 'no node: connectNode gives null');
  const off = JSON.parse(cli(['status', '--json', '--data-dir', dataDir]).stdout);
  t.equal(off.running, false);
  t.equal(off.via, 'store', 'counts read from the stopped store');
  t.same(off.counts, { commit: 1, tree: 1, blob: 2, tag: 0, repositories: 1 });
  t.equal(off.last_backup.size_bytes, 12345);
});

t.test('hot checkpoints while several writers push: counts exact, nothing acknowledged is missing', async (t) => {
  const dataDir = path.join(t.testdir(), 'data');
  const node = await startNode(dataDir);
  t.teardown(() => node.stop());
  const client = (await connectNode(dataDir))!;
  t.teardown(() => client.close());

  const acked: string[] = [];
  let stop = false;
  let failures = 0;
  const writer = async (w: number) => {
    for (let n = 0; !stop; n++) {
      const objs = Array.from({ length: 8 }, (_, i) => blob(`writer ${w} batch ${n} object ${i} ${'x'.repeat((n * 37 + i * 11) % 3000)}`));
      const r = await pushObjects(node.url, `load/w${w}`, objs);
      if (r.status !== 200) failures++;
      else acked.push(...(r.json().ids as string[]));
    }
  };
  const writers = [0, 1, 2, 3].map(writer);

  const totals: number[] = [];
  for (let i = 0; i < 6; i++) {
    await sleep(80);
    const before = acked.slice();
    const cp = await client.checkpoint({ db: true, consensus: true });
    const after = acked.length;
    totals.push(cp.createdMs!);
    t.ok(cp.dir.startsWith(path.join(dataDir, 'checkpoints', 'node-')), 'checkpoint under <data_dir>/checkpoints/node-*');
    t.ok(fs.existsSync(path.join(cp.dir, 'db', 'CURRENT')) && fs.existsSync(path.join(cp.dir, 'consensus', 'CURRENT')));
    t.same(fs.readdirSync(path.join(cp.dir, 'db')).filter((f) => f === 'LOG' || f === 'IDENTITY'), [], 'reading the counts left no files in it');
    const snap = await GutsStore.open(cp.dir, { readOnly: true });
    const counts = await snap.counts();
    t.same(counts, cp.counts, `checkpoint ${i}: reported counts are the checkpoint's own`);
    t.ok(counts.blob >= before.length, `checkpoint ${i}: ${counts.blob} blobs >= ${before.length} acknowledged before it`);
    t.ok(counts.blob <= after + 4 * 8, `checkpoint ${i}: ${counts.blob} blobs <= ${after} acknowledged after it + the batches in flight`);
    const has = await snap.hasObjects(before);
    t.equal(has.filter((x) => !x).length, 0, `checkpoint ${i}: every acknowledged object is in it`);
    await snap.close();
    await client.releaseCheckpoint(cp.id);
    t.notOk(fs.existsSync(cp.dir), 'released checkpoint is deleted');
  }
  stop = true;
  await Promise.all(writers);
  t.equal(failures, 0, 'no write failed during checkpoints');
  t.ok(acked.length > 0);
  const final = await client.counts();
  t.equal(final.blob, new Set(acked).size, 'final count = distinct acknowledged objects');
  t.equal(final.repositories, 4);
  t.same(fs.readdirSync(path.join(dataDir, 'checkpoints')), [], 'no checkpoint left behind');
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1];
  t.comment(`checkpoint latency under load (no write pause): median ${med(totals)} ms, max ${Math.max(...totals)} ms`);
  const m = (await request(node.url + '/metrics')).body.toString();
  t.equal(metric(m, 'guts_checkpoints_created_total'), 6);
  t.equal(metric(m, 'guts_checkpoints_active'), 0);
});

/** Minimal raw NDJSON client, to hold a lease without the NodeClient's keepalive. */
function rawSession(socketPath: string) {
  const sock = withSocketPath(socketPath, (p) => net.connect(p));
  let buf = '';
  const waiting: Array<(v: any) => void> = []; // eslint-disable-line @typescript-eslint/no-explicit-any
  sock.on('data', (c) => {
    buf += c.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      waiting.shift()?.(JSON.parse(line));
    }
  });
  let id = 0;
  return {
    call: (op: string, args: Record<string, unknown> = {}) =>
      new Promise<any>((resolve) => {  // eslint-disable-line @typescript-eslint/no-explicit-any
        waiting.push(resolve);
        sock.write(JSON.stringify({ id: ++id, op, args }) + '\n');
      }),
    send: (line: string) =>
      new Promise<any>((resolve) => {  // eslint-disable-line @typescript-eslint/no-explicit-any
        waiting.push(resolve);
        sock.write(line);
      }),
    close: () => sock.destroy(),
  };
}

t.test('checkpoint leases: expiry, owner disconnect, keepalive; leftovers of a crashed node removed at start', async (t) => {
  const dataDir = path.join(t.testdir(), 'data');
  const l = dataDirLayout(dataDir);
  let node = stopAtEnd(t, await startNode(dataDir));
  await pushObjects(node.url, 'a/b', [blob('one')]);

  // a lease nobody renews expires while its connection stays open
  const raw = rawSession(l.socket);
  const res = await raw.call('checkpoint', { db: true, consensus: false, leaseMs: 300 });
  t.equal(res.ok, true);
  t.ok(fs.existsSync(res.result.dir));
  t.notOk(fs.existsSync(path.join(res.result.dir, 'consensus')), 'db only');
  await waitFor(() => !fs.existsSync(res.result.dir), 5000, 'expired checkpoint removal');
  t.pass('unrenewed lease expired and its checkpoint was deleted');
  const renew = await raw.call('renew', { ids: [res.result.id] });
  t.equal(renew.error.code, 'GUTS_NOT_FOUND');
  t.equal((await raw.send('not json\n')).error.code, 'GUTS_INVALID_ARGUMENT', 'garbage gets an error, not a crash');
  t.equal((await raw.call('frobnicate')).error.code, 'GUTS_INVALID_ARGUMENT');

  // the owner's connection closes: released
  const res2 = await raw.call('checkpoint', { leaseMs: 60_000 });
  t.ok(fs.existsSync(res2.result.dir));
  raw.close();
  await waitFor(() => !fs.existsSync(res2.result.dir), 5000, 'release on disconnect');
  t.pass('checkpoint of a disconnected client released');

  // the NodeClient renews while it holds one
  const c = (await connectNode(dataDir))!;
  const cp = await c.checkpoint({ db: true, consensus: true, leaseMs: 300 });
  await sleep(1000);
  t.ok(fs.existsSync(cp.dir), 'kept alive by the client keepalive past its 300 ms lease');

  // kill -9: the checkpoint, pid file and socket stay behind
  node.child.kill('SIGKILL');
  await node.exited;
  t.ok(fs.existsSync(cp.dir) && fs.existsSync(l.pidFile) && fs.existsSync(l.socket), 'leftovers after kill -9');
  await c.releaseCheckpoint(cp.id);
  t.notOk(fs.existsSync(cp.dir), 'release with the node gone removes the dir directly');
  const cp2dir = path.join(l.checkpoints, 'node-leftover');
  fs.mkdirSync(path.join(cp2dir, 'db'), { recursive: true });
  fs.mkdirSync(path.join(l.checkpoints, 'other-tool'), { recursive: true });
  c.close();
  t.equal(await connectNode(dataDir), null, 'stale socket: no node');
  const mt = cli(['maintenance', 'enter', '--data-dir', dataDir]);
  t.equal(mt.code, 2);
  t.match(mt.stderr, /GUTS_NOT_RUNNING/);
  const st = JSON.parse(cli(['status', '--json', '--data-dir', dataDir]).stdout);
  t.equal(st.running, false);
  t.match(st.notes.join('\n'), /did not stop cleanly/);

  node = await startNode(dataDir);
  t.teardown(() => node.stop());
  t.notOk(fs.existsSync(cp2dir), 'leftover node checkpoint removed at start');
  t.ok(fs.existsSync(path.join(l.checkpoints, 'other-tool')), "other tools' checkpoints untouched");
  t.match(node.stderr(), /removing stale admin socket/);
  t.match(node.stderr(), /removing stale pid file/);
  t.equal(fs.readFileSync(l.pidFile, 'utf8').trim(), String(node.child.pid));
  t.equal(fs.statSync(l.socket).mode & 0o777, 0o600);
  const c2 = (await connectNode(dataDir))!;
  t.equal((await c2.counts()).blob, 1, 'data survived kill -9');
  c2.close();
});

t.test('import and seed write through a running node (ObjectSink over the socket)', async (t) => {
  const dataDir = path.join(t.testdir(), 'data');
  const node = await startNode(dataDir);
  t.teardown(() => node.stop());
  const c = (await connectNode(dataDir))!;
  t.teardown(() => c.close());
  t.equal(await c.putRepo('bob/tools', { description: 'x' }), true);
  t.equal(await c.putRepo('bob/tools', { description: 'y' }), false);
  // larger than one request batch: the client splits it
  const big = Array.from({ length: 3 }, (_, i) => ({ type: 'blob' as const, data: Buffer.alloc(13 * 1024 * 1024, 65 + i) }));
  const small = Array.from({ length: 50 }, (_, i) => ({ type: 'blob' as const, data: Buffer.from(`small ${i}`) }));
  const r = await c.putObjects('bob/tools', [...big, ...small]);
  t.equal(r.ids.length, 53);
  t.equal(r.added, 53);
  t.equal(r.ids[0], gitObjectId('blob', big[0].data));
  await c.setRefs('bob/tools', [
    { name: 'refs/heads/main', target: r.ids[3] },
    { name: 'HEAD', symbolic: 'refs/heads/main' },
  ]);
  await c.putBlocks(
    Array.from({ length: 10 }, (_, h) => ({ height: h, data: Buffer.from(`block ${h}`) })),
    7,
  );
  const st = await c.status();
  t.same(st.counts, { commit: 0, tree: 0, blob: 53, tag: 0, repositories: 1 });
  t.same(st.consensus, { blocks: 10, finalizedHeight: 7 });
  const refs = (await request(`${node.url}/api/repos/bob/tools/refs`)).json().refs;
  t.same(refs, [
    { name: 'HEAD', symbolic: 'refs/heads/main' },
    { name: 'refs/heads/main', target: r.ids[3] },
  ]);
  const got = await request(`${node.url}/api/objects/${r.ids[1]}`);
  t.equal(got.body.length, 13 * 1024 * 1024);
  t.equal(got.body[0], 66);
  await t.rejects(c.putObjects('not a repo', small), { code: 'GUTS_INVALID_ARGUMENT' });
});

t.test('config: api.addr, JSON logs at debug level, metrics on their own address, metrics textfile', async (t) => {
  const dir = t.testdir();
  const dataDir = path.join(dir, 'data');
  const textfile = path.join(dir, 'guts_backup.prom');
  const cfg = path.join(dir, 'config.yaml');
  fs.writeFileSync(
    cfg,
    `api:\n  addr: "127.0.0.1:0"\nstorage:\n  data_dir: ${JSON.stringify(dataDir)}\nlogging:\n  level: debug\n  format: json\nmetrics:\n  addr: "127.0.0.1:0"\n  textfile: ${JSON.stringify(textfile)}\n`,
  );
  const child = spawn(process.execPath, [BIN, 'serve', '--config', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  await waitFor(() => /"msg":"node ready"/.test(err), 20_000, 'node ready');
  const url = /^listening (http:\/\/\S+)$/m.exec(out)![1];
  const lines = err.trim().split('\n').map((l) => JSON.parse(l));
  t.ok(lines.every((l) => typeof l.ts === 'string' && typeof l.level === 'string' && typeof l.msg === 'string'), 'every log line is one JSON object');
  const metricsUrl = lines.find((l) => l.msg === 'metrics listening').metrics as string;
  t.not(new URL(metricsUrl).port, new URL(url).port, 'metrics on their own port');
  t.equal((await request(url + '/metrics')).status, 404, 'not on the API port then');
  t.equal((await request(metricsUrl)).status, 200);
  t.equal((await request(`${metricsUrl.replace('/metrics', '')}/api/objects/${'0'.repeat(40)}`)).status, 404, 'no object API on the metrics port');
  await pushObjects(url, 'a/b', [blob('x')]);
  await waitFor(() => /"msg":"http".*"status":200/.test(err), 2000, 'debug request log');
  const c = (await connectNode(dataDir))!;
  await c.recordBackup({ file: '/b/1.tar.zst', size_bytes: 7, created: '2026-03-01T00:00:00Z', kind: 'full' });
  c.close();
  const prom = fs.readFileSync(textfile, 'utf8');
  t.match(prom, /^guts_last_backup_timestamp 1772323200$/m);
  t.match(prom, /^guts_backup_size_bytes 7$/m);
  child.kill('SIGINT');
  t.equal(await exited, 0, 'SIGINT: clean exit 0');
});

t.test('SIGTERM under write load: in-flight writes finish, every acknowledged object is durable', async (t) => {
  const dataDir = path.join(t.testdir(), 'data');
  const node = stopAtEnd(t, await startNode(dataDir));
  const acked: string[] = [];
  let refused = 0;
  let stop = false;
  const writer = async (w: number) => {
    for (let n = 0; !stop; n++) {
      try {
        const r = await pushObjects(node.url, `w/w${w}`, [blob(`w${w} n${n} a`), blob(`w${w} n${n} b`)]);
        if (r.status === 200) acked.push(...(r.json().ids as string[]));
        else refused++;
      } catch {
        refused++; // connection refused / reset once the node stops accepting
        await sleep(5);
      }
    }
  };
  const writers = [0, 1, 2].map(writer);
  await waitFor(() => acked.length > 100, 10_000, 'some acknowledged writes');
  const exit = await node.stop();
  stop = true;
  await Promise.all(writers);
  t.same(exit, { code: 0, signal: null });
  t.ok(refused > 0, 'writes after the stop were refused');
  const s = await GutsStore.open(dataDir, { readOnly: true });
  const has = await s.hasObjects(acked);
  t.equal(has.filter((x) => !x).length, 0, `all ${acked.length} acknowledged objects are in the store`);
  t.equal((await s.counts()).blob, new Set(acked).size);
  await s.close();
});
