import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';

import { native } from '../src/native';
import { GutsStore, gitObjectId, storeLockHolder } from '../src/store';

function gitHashObject(type: string, body: Buffer): string {
  const r = spawnSync('git', ['hash-object', '-t', type, '--stdin', '--literally'], { input: body });
  return r.stdout.toString().trim();
}

t.test('object ids equal git hash-object', async (t) => {
  const dir = t.testdir();
  const store = await GutsStore.open(dir);
  t.teardown(() => store.close());
  const blobs = [Buffer.from(''), Buffer.from('hello\n'), Buffer.alloc(70000, 7), Buffer.from([0, 1, 2, 255])];
  const { ids, added } = await store.putObjects('alice/demo', blobs.map((data) => ({ type: 'blob', data })));
  t.equal(added, 4);
  blobs.forEach((b, i) => {
    t.equal(ids[i], gitHashObject('blob', b), `blob ${i}`);
    t.equal(gitObjectId('blob', b), ids[i]);
  });
  const got = await store.getObject(ids[2]);
  t.equal(got!.type, 'blob');
  t.ok(got!.data.equals(blobs[2]));
  t.equal(await store.getObject('0'.repeat(40)), null);
});

t.test('counts are exact after duplicate and batch puts', async (t) => {
  const dir = t.testdir();
  const store = await GutsStore.open(dir);
  t.teardown(() => store.close());
  const tree = Buffer.concat([Buffer.from('100644 a.txt\0'), Buffer.from(gitObjectId('blob', Buffer.from('a')), 'hex')]);
  const treeId = gitObjectId('tree', tree);
  const commit = Buffer.from(`tree ${treeId}\nauthor A <a@x> 1700000000 +0000\ncommitter A <a@x> 1700000000 +0000\n\nfirst\n`);
  const batch = [
    { type: 'blob' as const, data: Buffer.from('a') },
    { type: 'blob' as const, data: Buffer.from('a') }, // duplicate inside the batch
    { type: 'tree' as const, data: tree },
    { type: 'commit' as const, data: commit },
  ];
  t.equal((await store.putObjects('alice/demo', batch)).added, 3);
  t.equal((await store.putObjects('bob/fork', batch)).added, 0, 'existing objects are a no-op');
  await store.putRepo('alice/demo', { description: 'demo' });
  await store.putRepo('bob/fork');
  await store.putRepo('alice/demo', { description: 'again' });
  t.same(await store.counts(), { commit: 1, tree: 1, blob: 1, tag: 0, repositories: 2 });
  const ids: string[] = [];
  for await (const o of store.objects('bob/fork')) ids.push(o.id);
  t.equal(ids.length, 3, 'membership of the fork');
  await store.setRefs('alice/demo', [
    { name: 'refs/heads/main', target: gitObjectId('commit', commit) },
    { name: 'HEAD', symbolic: 'refs/heads/main' },
  ]);
  t.same(
    (await store.getRefs('alice/demo')).sort((a, b) => a.name.localeCompare(b.name)),
    [
      { name: 'HEAD', symbolic: 'refs/heads/main' },
      { name: 'refs/heads/main', target: gitObjectId('commit', commit) },
    ],
  );
  await t.rejects(store.putObjects('bad name', batch), { code: 'GUTS_INVALID_ARGUMENT' });
  await t.rejects(store.native.putObjects('', Uint8Array.from([9]), [Buffer.from('x')]), { code: 'GUTS_INVALID_ARGUMENT' });
});

t.test('consensus blocks', async (t) => {
  const dir = t.testdir();
  const store = await GutsStore.open(dir);
  t.teardown(() => store.close());
  await store.putBlocks([0, 1, 2].map((h) => ({ height: h, data: Buffer.from(`block ${h}`) })), 1);
  await store.putBlocks([{ height: 2, data: Buffer.from('block 2 again') }]);
  t.same(await store.consensusInfo(), { finalizedHeight: 1, blocks: 3 });
  t.equal((await store.getBlock(2))!.toString(), 'block 2 again');
  t.equal(await store.getBlock(99), null);
});

t.test('a second process gets GUTS_LOCKED naming the dir', async (t) => {
  const dir = t.testdir();
  const store = await GutsStore.open(dir);
  t.teardown(() => store.close());
  t.equal(storeLockHolder(dir), process.pid, 'own lock is reported, and probing does not drop it');
  const script = `
    const { GutsStore } = require(${JSON.stringify(path.resolve(__dirname, '../dist/src/store.js'))});
    GutsStore.open(process.argv[1]).then(() => console.log('OPENED'), (e) => console.log(JSON.stringify({ code: e.code, message: e.message })));`;
  const child = spawn(process.execPath, ['-e', script, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  await new Promise((r) => child.on('exit', r));
  const r = JSON.parse(out);
  t.equal(r.code, 'GUTS_LOCKED');
  t.match(r.message, dir);
  await t.rejects(GutsStore.open(dir), { code: 'GUTS_LOCKED' }, 'same process, second handle');
  const ro = spawnSync(process.execPath, ['-e', `process.stdout.write(String(require(${JSON.stringify(path.resolve(__dirname, '../dist/src/store.js'))}).storeLockHolder(process.argv[1])))`, dir]);
  t.equal(Number(ro.stdout.toString()), process.pid, 'other processes see our pid as lock holder');
});

t.test('close waits for pending work and rejects new work', async (t) => {
  const dir = t.testdir();
  const store = await GutsStore.open(dir);
  const bodies = Array.from({ length: 2000 }, (_, i) => ({ type: 'blob' as const, data: Buffer.from(`object ${i}`) }));
  const pending = [store.putObjects(null, bodies.slice(0, 1000)), store.putObjects(null, bodies.slice(1000)), store.counts()];
  const closed = store.close();
  await t.rejects(store.counts(), { code: 'GUTS_CLOSED' });
  const [a, b] = await Promise.all(pending);
  await closed;
  t.equal((a as { added: number }).added + (b as { added: number }).added, 2000, 'pending writes completed');
  const again = await GutsStore.open(dir);
  t.equal((await again.counts()).blob, 2000, 'writes are durable after close');
  await again.close();
  await again.close(); // idempotent
});

t.test('read-only open refuses a locked store and a missing one', async (t) => {
  const dir = t.testdir();
  await t.rejects(GutsStore.open(path.join(dir, 'nope'), { readOnly: true }), { code: 'GUTS_NOT_FOUND' });
  const s = await GutsStore.open(dir);
  await s.putObjects(null, [{ type: 'blob', data: Buffer.from('x') }]);
  await s.close();
  const ro = await GutsStore.open(dir, { readOnly: true });
  t.equal((await ro.counts()).blob, 1);
  await t.rejects(ro.putObjects(null, [{ type: 'blob', data: Buffer.from('y') }]), { code: 'GUTS_INVALID_ARGUMENT' });
  await ro.close();
});

t.test('the addon loads and works in a worker thread', async (t) => {
  const dir = t.testdir();
  const addon = path.resolve(__dirname, '../build/Release/guts_native.node');
  const w = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads');
     const n = require(workerData.addon);
     const s = new n.Store(workerData.dir);
     s.open().then(() => s.putObjects('', Uint8Array.from([3]), [Buffer.from('in a worker')]))
      .then((r) => s.close().then(() => parentPort.postMessage(r.ids.toString('hex'))));`,
    { eval: true, workerData: { addon, dir } },
  );
  const id = await new Promise<string>((resolve, reject) => {
    w.on('message', resolve);
    w.on('error', reject);
  });
  t.equal(id, gitObjectId('blob', Buffer.from('in a worker')));
  await w.terminate();
  t.equal(native.versions.rocksdb, '6.17.3');
});

t.test('the object and consensus stores open side by side: when one fails, the other is closed again (lock released)', async (t) => {
  const dir = t.testdir();
  const s = await GutsStore.open(dir);
  await s.putObjects('alice/demo', [{ type: 'blob', data: Buffer.from('x') }]);
  await s.close();
  const fs = await import('node:fs');
  for (const which of ['consensus', 'db']) {
    const current = path.join(dir, which, 'CURRENT');
    const saved = fs.readFileSync(current);
    fs.writeFileSync(current, 'MANIFEST-999999\n'); // names a MANIFEST that is not there
    await t.rejects(GutsStore.open(dir), { code: 'GUTS_IO', message: new RegExp(`store ${dir}/${which}:`) }, `${which} fails, named`);
    fs.writeFileSync(current, saved);
    const again = await GutsStore.open(dir); // GUTS_LOCKED if the other store had stayed open
    t.equal((await again.counts()).blob, 1, `after a failed ${which}: both open again`);
    await again.close();
  }
});
