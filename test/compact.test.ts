// Issue 14, store half: RocksDB built with LZ4 and ZSTD, the store's format by
// level (LZ4 above, ZSTD at the bottommost level), stores written in the old
// format (snappy everywhere) still open and verify, and `guts-node compact`
// converts them, offline and through a running node, object for object.
import t from 'tap';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { native } from '../src/native';
import { GutsStore } from '../src/store';
import { cli, holdStore, ROOT } from './fixtures/cli';
import { startNode } from './lib/node-proc';

const ENV = { GUTS_CONFIG: '/dev/null' };

/** Real text files shipped with the project's dependencies (RocksDB's sources): text, like a git host's blobs. */
function realFiles(maxBytes: number): Buffer[] {
  const root = path.join(ROOT, 'node_modules', 'rocksdb', 'deps', 'rocksdb', 'rocksdb', 'db');
  const out: Buffer[] = [];
  let total = 0;
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (total >= maxBytes) return;
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && /\.(cc|h)$/.test(e.name)) {
        const b = fs.readFileSync(p);
        out.push(b);
        total += b.length;
      }
    }
  };
  walk(root);
  return out;
}

/** id -> sha256 of the body, of every object in the store (read-only open). */
async function objectDigests(dataDir: string): Promise<Map<string, string>> {
  const s = await GutsStore.open(dataDir, { readOnly: true, create: false });
  const m = new Map<string, string>();
  try {
    for await (const o of s.objects(null)) m.set(o.id, `${o.type}:${crypto.createHash('sha256').update(o.data).digest('hex')}`);
  } finally {
    await s.close();
  }
  return m;
}

/** A store written in the format of every store before issue 14 (snappy everywhere), flushed. */
async function snappyStore(dataDir: string, files: Buffer[]): Promise<void> {
  const s = await GutsStore.open(dataDir, { format: 'snappy' });
  try {
    // several batches and flushes: several SST files, some of them in L0
    const per = Math.ceil(files.length / 4);
    for (let i = 0; i < files.length; i += per) {
      await s.putObjects('alice/rocksdb', files.slice(i, i + per).map((data) => ({ type: 'blob' as const, data })));
      await s.flush();
    }
    await s.putRepo('alice/rocksdb');
    await s.putBlocks([{ height: 0, data: Buffer.from('genesis') }], 0);
    await s.flush();
  } finally {
    await s.close();
  }
}

async function summary(dataDir: string) {
  const s = await GutsStore.open(dataDir, { readOnly: true, create: false });
  try {
    return await native.sstSummary(s.native);
  } finally {
    await s.close();
  }
}

t.test('RocksDB is built with LZ4 and ZSTD besides snappy', async (t) => {
  t.ok(native.compressions.includes('lz4'), 'lz4');
  t.ok(native.compressions.includes('zstd'), 'zstd');
  t.ok(native.compressions.includes('snappy'), 'snappy');
});

t.test('new stores: ZSTD at the bottommost level; unknown format and bad RocksDB options are refused', async (t) => {
  const dir = t.testdir();
  const files = realFiles(2 << 20);
  const s = await GutsStore.open(path.join(dir, 'new'));
  await s.putObjects('alice/rocksdb', files.map((data) => ({ type: 'blob' as const, data })));
  await s.flush();
  const n = s.native;
  // the flush writes L0 (LZ4); a full compaction moves everything to the bottommost level (ZSTD)
  const r = await native.compactStore(n).promise;
  await s.close();
  t.ok(r.after.compression.zstd > 0, 'bottommost level is ZSTD');
  t.equal(r.after.compression.snappy ?? 0, 0, 'no snappy in a new store');
  t.equal(r.after.compression.lz4 ?? 0, 0, 'after a full compaction nothing stays above the bottommost level');
  const raw = files.reduce((a, b) => a + b.length, 0);
  t.ok(r.after.bytes < raw * 0.35, `text compresses: ${r.after.bytes} SST bytes for ${raw} bytes of files`);

  await t.rejects(GutsStore.open(path.join(dir, 'x'), { format: 'lzma' as 'snappy' }), { code: 'GUTS_INVALID_ARGUMENT' });
  await t.rejects(GutsStore.open(path.join(dir, 'y'), { rocksdbOptions: 'no_such_option=1' }), { code: 'GUTS_INVALID_ARGUMENT' });
  const tuned = await GutsStore.open(path.join(dir, 'z'), { rocksdbOptions: 'bottommost_compression=kLZ4Compression' });
  await tuned.putObjects(null, files.slice(0, 5).map((data) => ({ type: 'blob' as const, data })));
  await tuned.flush();
  const rz = await native.compactStore(tuned.native).promise;
  await tuned.close();
  t.ok(rz.after.compression.lz4 > 0 && !rz.after.compression.zstd, 'a RocksDB option string overrides the default');
});

t.test('RocksDB trains a ZSTD dictionary per SST when asked (zstd dictBuilder linked); sstSummary parts add up; DB options in the option string', async (t) => {
  const dir = t.testdir();
  const files = realFiles(8 << 20);
  const raw = files.reduce((a, b) => a + b.length, 0);
  const build = async (name: string, rocksdbOptions?: string) => {
    const s = await GutsStore.open(path.join(dir, name), { rocksdbOptions });
    try {
      await s.putObjects(null, files.map((data) => ({ type: 'blob' as const, data })));
      await s.flush();
      await native.compactStore(s.native).promise;
      return await native.sstSummary(s.native);
    } finally {
      await s.close();
    }
  };
  // the default has no dictionary (docs/OPERATIONS.md: reads re-digest it in this build);
  // with the former stub trainer RocksDB silently wrote no dictionary: same bytes
  const dict = await build('dict', 'bottommost_compression_opts={level=3;max_dict_bytes=65536;zstd_max_train_bytes=655360;enabled=true}');
  const plain = await build('plain');
  t.ok(dict.compression.zstd > 0 && plain.compression.zstd > 0, 'both ZSTD at the bottom');
  t.ok(dict.bytes < plain.bytes, `a trained dictionary pays: ${dict.bytes} < ${plain.bytes} bytes without one`);
  const p = dict.parts!;
  t.ok(p.rawValue >= raw, `raw values ${p.rawValue} hold the ${raw} bytes of the files`);
  t.ok(p.rawKey > 0 && p.entries >= new Set(files.map((f) => f.toString('base64'))).size, 'keys and entries counted');
  t.ok(p.data > 0 && p.data + p.index + p.filter <= dict.bytes, 'data + index + filter blocks within the SST bytes');
  t.ok(p.data < p.rawValue * 0.35, 'data blocks compressed');
  // DB options (not only column family ones) are accepted by the option string
  const s = await GutsStore.open(path.join(dir, 'db-opts'), { rocksdbOptions: 'max_subcompactions=1;max_background_jobs=2' });
  await s.close();
});

t.test('a snappy store opens, reads, takes writes and verifies; compact converts it object for object', async (t) => {
  const dir = t.testdir();
  const data = path.join(dir, 'data');
  const files = realFiles(3 << 20);
  await snappyStore(data, files);
  const before = await summary(data);
  t.ok(before.compression.snappy > 0, 'written in snappy');
  t.notOk(before.compression.zstd || before.compression.lz4, 'nothing but snappy');
  const digests = await objectDigests(data);
  t.equal(digests.size, new Set(files.map((f) => f.toString('base64'))).size, 'every object stored');

  // opened with today's options, a copy of it reads, takes writes and verifies
  // (its flushes may trigger compactions that already rewrite part of it)
  const copy = path.join(dir, 'copy');
  fs.cpSync(data, copy, { recursive: true });
  const s = await GutsStore.open(copy);
  const extra = Buffer.from('a blob written into a snappy store with the new options\n');
  await s.putObjects('alice/rocksdb', [{ type: 'blob', data: extra }]);
  const first = digests.keys().next().value!;
  t.ok((await s.getObject(first))?.data.length, 'an old object reads');
  await s.flush();
  await s.close();
  const v0 = cli(['verify', '--data-dir', copy, '--full', '--json'], { env: ENV });
  t.equal(v0.status, 0, v0.stderr);
  t.equal(JSON.parse(v0.stdout).objects, digests.size + 1);
  const copied = await objectDigests(copy);
  let kept = 0;
  for (const [id, d] of digests) if (copied.get(id) === d) kept++;
  t.equal(kept, digests.size, 'every old object reads back identical');

  const r = cli(['compact', '--data-dir', data, '--json'], { env: ENV });
  t.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  t.equal(j.via, 'store');
  t.equal(j.data_dir, data);
  t.ok(j.before.compression_bytes.snappy > 0, 'before: snappy');
  t.same(Object.keys(j.after.compression_bytes), ['zstd'], 'after: ZSTD only');
  t.ok(j.after.sst_bytes < j.before.sst_bytes * 0.8, `smaller: ${j.after.sst_bytes} < ${j.before.sst_bytes}`);
  t.equal(j.ratio, Math.round((j.after.sst_bytes / j.before.sst_bytes) * 1000) / 1000);
  t.equal(j.column_families, 6, '5 column families of db/ and consensus/');
  t.ok(j.duration_seconds >= 0);

  const after = await objectDigests(data);
  t.equal(after.size, digests.size, 'same number of objects');
  let same = 0;
  for (const [id, d] of digests) if (after.get(id) === d) same++;
  t.equal(same, digests.size, 'every object identical, byte for byte');
  const v = cli(['verify', '--data-dir', data, '--full', '--json'], { env: ENV });
  t.equal(v.status, 0, v.stderr);
  const vj = JSON.parse(v.stdout);
  t.equal(vj.objects, digests.size);
  t.same(vj.problems, []);
  t.equal(vj.consensus.blocks, 1, 'consensus store compacted too, its block still there');

  // human output names both formats
  const h = cli(['compact', '--data-dir', data], { env: ENV });
  t.equal(h.status, 0, h.stderr);
  t.match(h.stdout, /^compacted .* offline: .*zstd.* -> .*zstd/);
});

t.test('compact through the running node: writes go on, the store ends in the new format', async (t) => {
  const dir = t.testdir();
  const data = path.join(dir, 'data');
  const files = realFiles(2 << 20);
  await snappyStore(data, files);
  const digests = await objectDigests(data);
  const node = await startNode(data, [], ENV);
  t.teardown(() => node.stop());
  // maintenance promises a quiet store: compact is refused until it ends
  t.equal(cli(['maintenance', 'enter', '--data-dir', data, '--timeout', '1m'], { env: ENV }).status, 0);
  const refused = cli(['compact', '--data-dir', data, '--json'], { env: ENV });
  t.not(refused.status, 0);
  t.equal(JSON.parse(refused.stdout).error.code, 'GUTS_MAINTENANCE');
  t.equal(cli(['maintenance', 'exit', '--data-dir', data], { env: ENV }).status, 0);
  const r = cli(['compact', '--data-dir', data, '--json'], { env: ENV });
  t.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  t.equal(j.via, 'node');
  t.ok(j.before.compression_bytes.snappy > 0);
  t.notOk(j.after.compression_bytes.snappy, 'no snappy left');
  // (the node's own compactions may have converted part of it before)
  t.ok(j.after.sst_bytes <= j.before.sst_bytes, 'not larger');
  // the node still serves writes
  const imp = cli(['dev', 'seed', '--data-dir', data, '--size', '256KiB', '--repos', '1', '--json'], { env: ENV });
  t.equal(imp.status, 0, imp.stderr);
  t.equal(JSON.parse(imp.stdout).via, 'node');
  t.equal((await node.stop()).code, 0);
  const after = await objectDigests(data);
  let same = 0;
  for (const [id, d] of digests) if (after.get(id) === d) same++;
  t.equal(same, digests.size, 'every old object identical');
  const v = cli(['verify', '--data-dir', data, '--full'], { env: ENV });
  t.equal(v.status, 0, v.stderr + v.stdout);
});

t.test('compact: usage and refusals', async (t) => {
  const dir = t.testdir({ empty: {} });
  const help = cli(['compact', '--help'], { env: ENV });
  t.equal(help.status, 0);
  t.match(help.stdout, /--data-dir/);
  t.match(help.stdout, /Exit codes/);
  const none = cli(['compact', '--data-dir', path.join(dir, 'empty'), '--json'], { env: ENV });
  t.equal(none.status, 2);
  t.equal(JSON.parse(none.stdout).error.code, 'GUTS_NOT_FOUND');

  // held by another process that serves no admin socket: refused, not waited for
  const data = path.join(dir, 'held');
  await snappyStore(data, realFiles(64 << 10));
  const holder = await holdStore(data);
  t.teardown(() => holder.kill('SIGKILL'));
  const locked = cli(['compact', '--data-dir', data, '--json'], { env: ENV });
  t.equal(locked.status, 3, locked.stderr);
  t.equal(JSON.parse(locked.stdout).error.code, 'GUTS_LOCKED');
});

t.test('a store written with a trained ZSTD dictionary opens with the default options, reads identical, verifies; compact rewrites it', async (t) => {
  const dir = t.testdir();
  const data = path.join(dir, 'data');
  const files = realFiles(4 << 20);
  // bottommost dictionary on (option string): RocksDB digests it once per SST (ZSTD_STATIC_LINKING_ONLY build)
  const s = await GutsStore.open(data, { rocksdbOptions: 'bottommost_compression_opts={level=3;max_dict_bytes=32768;zstd_max_train_bytes=655360;enabled=true}' });
  await s.putObjects('alice/rocksdb', files.map((d) => ({ type: 'blob' as const, data: d })));
  await s.putRepo('alice/rocksdb');
  await s.flush();
  await native.compactStore(s.native).promise;
  await s.close();
  const want = new Set(files.map((f) => `blob:${crypto.createHash('sha256').update(f).digest('hex')}`));
  const digests = await objectDigests(data);
  t.equal(digests.size, want.size, 'every object stored');
  t.ok([...digests.values()].every((d) => want.has(d)), 'every object reads back identical through the dictionary');

  // opened with today's options (no dictionary): point reads and writes work
  const w = await GutsStore.open(data);
  const first = digests.keys().next().value!;
  t.ok((await w.getObject(first))?.data.length, 'a dictionary-compressed object reads with the default options');
  await w.putObjects('alice/rocksdb', [{ type: 'blob', data: Buffer.from('written into a dictionary store\n') }]);
  await w.flush();
  await w.close();
  const v = cli(['verify', '--data-dir', data, '--full', '--json'], { env: ENV });
  t.equal(v.status, 0, v.stderr);
  t.equal(JSON.parse(v.stdout).objects, digests.size + 1);

  const r = cli(['compact', '--data-dir', data, '--json'], { env: ENV });
  t.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  t.same(Object.keys(j.after.compression_bytes), ['zstd'], 'after: ZSTD only');
  const after = await objectDigests(data);
  t.equal(after.size, digests.size + 1, 'same objects after compact');
  let same = 0;
  for (const [id, d] of digests) if (after.get(id) === d) same++;
  t.equal(same, digests.size, 'every object identical after compact');
  const v2 = cli(['verify', '--data-dir', data, '--full', '--json'], { env: ENV });
  t.equal(v2.status, 0, v2.stderr);
  t.same(JSON.parse(v2.stdout).problems, []);
});

/** level_compaction_dynamic_level_bytes of every column family in the latest OPTIONS file of a RocksDB dir. */
function recordedDynamicLevels(dbDir: string): boolean[] {
  const latest = fs
    .readdirSync(dbDir)
    .filter((f) => /^OPTIONS-\d+$/.test(f))
    .sort((a, b) => Number(a.slice(8)) - Number(b.slice(8)))
    .pop();
  if (!latest) throw new Error(`no OPTIONS file in ${dbDir}`);
  return [...fs.readFileSync(path.join(dbDir, latest), 'utf8').matchAll(/^\s*level_compaction_dynamic_level_bytes=(true|false)$/gm)].map((m) => m[1] === 'true');
}

t.test('dynamic level sizes: on for a store created in the default format; an existing store keeps what it records', async (t) => {
  const dir = t.testdir();
  const files = realFiles(256 << 10);
  const put = async (dataDir: string, opts: Parameters<typeof GutsStore.open>[1] = {}) => {
    const s = await GutsStore.open(dataDir, opts);
    try {
      await s.putObjects('alice/rocksdb', files.slice(0, 20).map((data) => ({ type: 'blob' as const, data })));
      await s.flush();
    } finally {
      await s.close();
    }
  };
  const all = (dataDir: string) => [...recordedDynamicLevels(path.join(dataDir, 'db')), ...recordedDynamicLevels(path.join(dataDir, 'consensus'))];

  // a new store in the default format
  const fresh = path.join(dir, 'fresh');
  await put(fresh);
  t.ok(all(fresh).length >= 2, 'OPTIONS files of db/ and consensus/ read');
  t.ok(all(fresh).every((v) => v), 'a new store has dynamic level sizes in db/ and consensus/');
  await put(fresh);
  t.ok(all(fresh).every((v) => v), 'and keeps them when opened again');

  // a store of the format before issue 14 (snappy) keeps fixed sizes when the default format opens it
  const old = path.join(dir, 'old');
  await snappyStore(old, files);
  t.ok(all(old).every((v) => !v), 'a snappy store records fixed level sizes');
  await put(old);
  t.ok(all(old).every((v) => !v), 'opened in the default format, it keeps them (RocksDB advises against switching)');

  // a default-format store written before dynamic sizes were the default
  const before = path.join(dir, 'before');
  await put(before, { rocksdbOptions: 'level_compaction_dynamic_level_bytes=false' });
  t.ok(all(before).every((v) => !v), 'a store created with fixed sizes');
  await put(before);
  t.ok(all(before).every((v) => !v), 'keeps them when the default options open it');

  // the offline compact keeps the store's choice too, and the store stays whole
  const c = cli(['compact', '--data-dir', old, '--json'], { env: ENV });
  t.equal(c.status, 0, c.stderr);
  t.ok(all(old).every((v) => !v), 'compact keeps the recorded fixed sizes');
  const v = cli(['verify', '--data-dir', old, '--full', '--json'], { env: ENV });
  t.equal(v.status, 0, v.stderr);
  t.same(JSON.parse(v.stdout).problems, []);
});
