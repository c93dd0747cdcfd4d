import t from 'tap';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { loadVerifyDataDir } from '../src/backup-verify';
import { restoreBackup, stagingDirFor } from '../src/restore';
import { GutsStore } from '../src/store';
import { buildArchive, checkpointFiles, cli, CLI, Compression, noise, ROOT, sampleFiles, SrcFile } from './fixtures/archives';

/** A real store with repos, objects and consensus blocks, checkpointed into dir/ck. */
async function storeCheckpoint(dir: string) {
  const store = await GutsStore.open(path.join(dir, 'live'), { create: true });
  await store.putRepo('alice/one', { description: 'first' });
  await store.putRepo('bob/two');
  const blobs = Array.from({ length: 200 }, (_, i) => ({ type: 'blob' as const, data: Buffer.from(`blob ${i}\n`.repeat(i + 1)) }));
  const { ids } = await store.putObjects('alice/one', blobs);
  const tree = Buffer.concat(ids.slice(0, 3).map((id, i) => Buffer.concat([Buffer.from(`100644 f${i}\0`), Buffer.from(id, 'hex')])));
  const tr = await store.putObjects('alice/one', [{ type: 'tree', data: tree }]);
  const commit = Buffer.from(`tree ${tr.ids[0]}\nauthor A <a@x> 1735696800 +0000\ncommitter A <a@x> 1735696800 +0000\n\nfirst\n`);
  const c = await store.putObjects('bob/two', [{ type: 'commit', data: commit }]);
  await store.setRefs('alice/one', [{ name: 'refs/heads/main', target: c.ids[0] }]);
  await store.putBlocks(
    Array.from({ length: 5 }, (_, h) => ({ height: h, data: Buffer.from(`block ${h}`) })),
    4,
  );
  const counts = await store.counts();
  await store.native.checkpoint(path.join(dir, 'ck'), { db: true, consensus: true });
  await store.close();
  return { ck: path.join(dir, 'ck'), counts };
}

/** What a db/ needs besides its SSTs (src/archive-layout.ts: CURRENT and a MANIFEST). */
const DB_HEAD: SrcFile[] = [
  { path: 'db/CURRENT', data: Buffer.from('MANIFEST-000001\n') },
  { path: 'db/MANIFEST-000001', data: Buffer.from('manifest') },
];

function archiveFrom(dir: string, name: string, files: SrcFile[], counts: { commit: number; tree: number; blob: number; tag: number; repositories: number }, compression: Compression, kind: 'full' | 'consensus-only' = 'full') {
  return buildArchive(dir, name, { files, compression, kind, objects: { commit: counts.commit, tree: counts.tree, blob: counts.blob, tag: counts.tag }, repositories: counts.repositories });
}

function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string, rel: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(p, r);
      else out[r] = fs.readFileSync(p).toString('base64');
    }
  };
  walk(dir, '');
  return out;
}

t.test('round trip: checkpoint -> archive (all three formats) -> restore -> byte-identical files, equal counts', async (t) => {
  const dir = t.testdir();
  const { ck, counts } = await storeCheckpoint(dir);
  const files = [...checkpointFiles(ck), { path: 'keys/node.key', data: Buffer.from('aa\nbb\n'), mode: 0o600 }, { path: 'config/config.yaml', data: Buffer.from('storage:\n  data_dir: /x\n'), mode: 0o600 }];
  for (const [compression, name] of [
    ['zstd-frames', 'b.tar.zst'],
    ['gzip', 'b.tar.gz'],
    ['none', 'b.tar'],
  ] as const) {
    const a = archiveFrom(dir, name, files, counts, compression);
    const target = path.join(dir, `restored-${compression}`);
    const r = await cli(['backup', 'restore', a.path, '--target', target, '--json']);
    t.equal(r.code, 0, r.stderr);
    const rep = JSON.parse(r.stdout);
    t.match(rep, { target, kind: 'full', files: checkpointFiles(ck).length, objects: { blob: counts.blob, tree: counts.tree, commit: counts.commit }, repositories: counts.repositories });
    t.type(rep.elapsed_ms, 'number');
    // byte-identical db/ and consensus/; no keys/, config/ or metadata files in the data dir
    t.same(snapshot(target), snapshot(ck), `${compression}: files identical`);
    t.same(fs.readdirSync(target).sort(), ['consensus', 'db']);
    t.equal(fs.statSync(path.join(target, 'db', 'CURRENT')).mode & 0o777, fs.statSync(path.join(ck, 'db', 'CURRENT')).mode & 0o700, 'owner bits kept, group/other cleared');
    const s = await GutsStore.open(target, { readOnly: true });
    t.same(await s.counts(), counts, `${compression}: counts equal`);
    t.same((await s.getRefs('alice/one')).map((x) => x.name), ['refs/heads/main']);
    t.same(await s.consensusInfo(), { finalizedHeight: 4, blocks: 5 });
    await s.close();
  }
  // the human summary goes to stderr with the measured RTO
  const a = archiveFrom(dir, 'h.tar.zst', files, counts, 'zstd');
  const r = await cli(['backup', 'restore', a.path, '--target', path.join(dir, 'human')]);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, '');
  t.match(r.stderr, /Restored .*h\.tar\.zst \(full, created 2025-01-01T02:00:00Z\) into .*human\n {2}Files: \d+ \(.*\)\n {2}Objects: 200 blobs, 1 trees, 1 commits\n {2}Repositories: 2\n {2}Elapsed: \d+\.\d s \(measured RTO\)\n/);

  const verifyDataDir = await loadVerifyDataDir();
  if (verifyDataDir) {
    const v = await cli(['backup', 'restore', a.path, '--target', path.join(dir, 'verified'), '--verify', '--json']);
    t.equal(v.code, 0, v.stderr);
    t.equal(JSON.parse(v.stdout).verified, true);
  } else {
    t.skip('--verify: src/verify.ts does not export verifyDataDir yet');
  }
});

t.test('default target is the configured data dir; non-empty target needs --force', async (t) => {
  const dir = t.testdir();
  const a = buildArchive(dir, 'a.tar.zst', { files: sampleFiles() });
  const data = path.join(dir, 'data');
  fs.mkdirSync(path.join(data, 'db'), { recursive: true });
  fs.writeFileSync(path.join(data, 'db', 'old-marker'), 'old');
  const r = await cli(['--data-dir', data, 'backup', 'restore', a.path]);
  t.equal(r.code, 2);
  t.match(r.stderr, /GUTS_EXISTS: target .*data is not empty \(use --force/);
  t.same(fs.readdirSync(path.join(data, 'db')), ['old-marker'], 'target untouched');

  const f = await cli(['--data-dir', data, 'backup', 'restore', a.path, '--force']);
  t.equal(f.code, 0, f.stderr);
  t.same(fs.readdirSync(data).sort(), ['consensus', 'db'], 'old data replaced');
  t.same(
    fs.readdirSync(dir).filter((n) => n.includes('.restore-')),
    [],
    'old data (at the staging path after the exchange) removed',
  );
  t.same(fs.readFileSync(path.join(data, 'db', '000013.sst')), sampleFiles()[1].data);

  // an existing empty target is fine without --force
  const empty = path.join(dir, 'empty');
  fs.mkdirSync(empty);
  t.equal((await cli(['backup', 'restore', a.path, '--target', empty])).code, 0);
  t.same(fs.readdirSync(empty).sort(), ['consensus', 'db']);
});

t.test('restoring into a live store is refused with exit 3', async (t) => {
  const dir = t.testdir();
  const { ck, counts } = await storeCheckpoint(dir);
  const a = archiveFrom(dir, 'a.tar.zst', checkpointFiles(ck), counts, 'zstd-frames');
  const live = path.join(dir, 'live');
  fs.writeFileSync(path.join(live, 'marker'), 'still here');
  const inode = fs.statSync(live).ino;
  const holder = spawn(
    process.execPath,
    ['-e', `require(${JSON.stringify(path.join(ROOT, 'dist/src/store.js'))}).GutsStore.open(${JSON.stringify(live)}).then(() => { console.log('ready'); setInterval(() => {}, 1000); })`],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  t.teardown(() => {
    holder.kill('SIGKILL');
  });
  await new Promise<void>((resolve) => holder.stdout!.once('data', () => resolve()));
  const r = await cli(['backup', 'restore', a.path, '--target', live, '--force']);
  t.equal(r.code, 3, r.stderr);
  t.match(r.stderr, /GUTS_LOCKED/);
  holder.kill('SIGKILL');
  await new Promise((resolve) => holder.once('exit', resolve));
  t.equal(fs.statSync(live).ino, inode, 'the target dir was not swapped');
  t.equal(fs.readFileSync(path.join(live, 'marker'), 'utf8'), 'still here');
  t.same(
    fs.readdirSync(dir).filter((n) => n.includes('.restore-')),
    [],
  );
});

t.test('--key-to / --config-to: 0600, never replacing a different file', async (t) => {
  const dir = t.testdir();
  const key = Buffer.from('private\npublic\n');
  const a = buildArchive(dir, 'k.tar.zst', { files: [...sampleFiles(), { path: 'keys/node.key', data: key, mode: 0o600 }, { path: 'config/config.yaml', data: Buffer.from('api:\n  addr: "0.0.0.0:8080"\n'), mode: 0o600 }] });
  const keyTo = path.join(dir, 'etc', 'node.key');
  const r = await cli(['backup', 'restore', a.path, '--target', path.join(dir, 'd1'), '--key-to', keyTo, '--config-to', path.join(dir, 'etc', 'config.yaml'), '--json']);
  t.equal(r.code, 0, r.stderr);
  t.match(JSON.parse(r.stdout), { key_to: { path: keyTo, action: 'written' }, config_to: { action: 'written' } });
  t.same(fs.readFileSync(keyTo), key);
  t.equal(fs.statSync(keyTo).mode & 0o777, 0o600);
  t.notOk(fs.existsSync(path.join(dir, 'd1', 'keys')), 'the key is not in the data dir');

  const same = await cli(['backup', 'restore', a.path, '--target', path.join(dir, 'd2'), '--key-to', keyTo, '--json']);
  t.equal(same.code, 0, same.stderr);
  t.equal(JSON.parse(same.stdout).key_to.action, 'unchanged');

  fs.writeFileSync(keyTo, 'a different key\n', { mode: 0o600 });
  const diff = await cli(['backup', 'restore', a.path, '--target', path.join(dir, 'd3'), '--key-to', keyTo]);
  t.equal(diff.code, 2);
  t.match(diff.stderr, /GUTS_EXISTS: .*node\.key exists and differs from the archived node key/);
  t.equal(fs.readFileSync(keyTo, 'utf8'), 'a different key\n', 'existing key kept');
  t.notOk(fs.existsSync(path.join(dir, 'd3')), 'nothing restored');

  const noKey = buildArchive(dir, 'nokey.tar.zst', { files: sampleFiles() });
  const nk = await cli(['backup', 'restore', noKey.path, '--target', path.join(dir, 'd4'), '--key-to', path.join(dir, 'other.key')]);
  t.equal(nk.code, 2);
  t.match(nk.stderr, /GUTS_NOT_FOUND: .*holds no keys\/node\.key/);
});

t.test('consensus-only archive replaces consensus/ and keeps db/', async (t) => {
  const dir = t.testdir();
  const { ck, counts } = await storeCheckpoint(dir);
  const target = path.join(dir, 'data');
  const full = archiveFrom(dir, 'full.tar.zst', checkpointFiles(ck), counts, 'zstd-frames');
  await restoreBackup({ file: full.path, target });
  const dbBefore = snapshot(path.join(target, 'db'));
  const consensusFiles: SrcFile[] = [
    { path: 'consensus/CURRENT', data: Buffer.from('MANIFEST-000009\n') },
    { path: 'consensus/MANIFEST-000009', data: noise(200, 5) },
    { path: 'consensus/000010.sst', data: noise(20000, 4) },
  ];
  const c = buildArchive(dir, 'consensus-13.tar.zst', { files: consensusFiles, kind: 'consensus-only' });
  const r = await restoreBackup({ file: c.path, target, force: true });
  t.equal(r.kind, 'consensus-only');
  t.same(snapshot(path.join(target, 'db')), dbBefore, 'db/ carried over unchanged');
  t.same(fs.readdirSync(path.join(target, 'consensus')).sort(), ['000010.sst', 'CURRENT', 'MANIFEST-000009']);
});

t.test('kill -9 mid-restore leaves the target untouched; the next run removes the leftover staging dir', async (t) => {
  const dir = t.testdir();
  // ~24 MB of incompressible data in many files, so there is time to kill
  const files: SrcFile[] = Array.from({ length: 24 }, (_, i) => ({ path: `db/${String(100 + i).padStart(6, '0')}.sst`, data: noise(1_000_000, i + 1) })).concat(DB_HEAD);
  const a = buildArchive(dir, 'big.tar.zst', { files, frameSize: 1 << 20 });
  const target = path.join(dir, 'data');
  fs.mkdirSync(path.join(target, 'db'), { recursive: true });
  fs.writeFileSync(path.join(target, 'db', 'OLD'), 'old data');
  const before = snapshot(target);

  let killedMidway = false;
  for (let attempt = 0; attempt < 5 && !killedMidway; attempt++) {
    const child = spawn(process.execPath, [CLI, 'backup', 'restore', a.path, '--target', target, '--force', '--threads', '1'], { stdio: 'ignore' });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    const staging = stagingDirFor(target, child.pid);
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (child.exitCode !== null) break;
      let n = 0;
      try {
        n = fs.readdirSync(path.join(staging, 'db')).length;
      } catch {
        /* not there yet */
      }
      if (n >= 2) {
        child.kill('SIGKILL');
        break;
      }
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        break;
      }
      await new Promise((r) => setImmediate(r));
    }
    const res = await exited;
    killedMidway = res.signal === 'SIGKILL';
    if (killedMidway) {
      t.same(snapshot(target), before, 'target untouched after kill -9');
      t.ok(fs.existsSync(staging), 'the staging dir is left behind');
      const next = await cli(['backup', 'restore', a.path, '--target', target, '--force']);
      t.equal(next.code, 0, next.stderr);
      t.match(next.stderr, new RegExp(`removed leftover staging dir .*\\.restore-${child.pid}\\.staging of an interrupted restore \\(process ${child.pid}\\)`));
      t.notOk(fs.existsSync(staging), 'leftover removed');
      t.same(fs.readdirSync(path.join(target, 'db')).length, files.length, 'restored');
      t.notOk(fs.existsSync(path.join(target, 'db', 'OLD')));
    } else {
      // restore finished before we could kill it: put the old data back and try again
      fs.rmSync(target, { recursive: true, force: true });
      fs.mkdirSync(path.join(target, 'db'), { recursive: true });
      fs.writeFileSync(path.join(target, 'db', 'OLD'), 'old data');
    }
  }
  t.ok(killedMidway, 'killed the restore midway');
});

t.test('SIGINT cancels cleanly: exit 130, no staging dir, target untouched', async (t) => {
  const dir = t.testdir();
  const files: SrcFile[] = Array.from({ length: 16 }, (_, i) => ({ path: `db/${String(200 + i).padStart(6, '0')}.sst`, data: noise(1_000_000, i + 7) })).concat(DB_HEAD);
  const a = buildArchive(dir, 'big.tar.zst', { files, frameSize: 1 << 20 });
  const target = path.join(dir, 'data');
  const child = spawn(process.execPath, [CLI, 'backup', 'restore', a.path, '--target', target, '--threads', '1'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const staging = stagingDirFor(target, child.pid);
  while (child.exitCode === null) {
    let n = 0;
    try {
      n = fs.readdirSync(path.join(staging, 'db')).length;
    } catch {
      /* not yet */
    }
    if (n >= 1) {
      child.kill('SIGINT');
      break;
    }
    await new Promise((r) => setImmediate(r));
  }
  const code = await exited;
  if (code === 0) {
    t.skip('restore finished before SIGINT');
    return;
  }
  t.equal(code, 130, stderr);
  t.match(stderr, /GUTS_CANCELLED/);
  t.notOk(fs.existsSync(staging));
  t.notOk(fs.existsSync(target));
});

t.test('a damaged archive is refused before the target is touched', async (t) => {
  const dir = t.testdir();
  const a = buildArchive(dir, 'a.tar.zst', { files: sampleFiles(), sidecar: false });
  const bytes = fs.readFileSync(a.path);
  fs.writeFileSync(a.path, bytes.subarray(0, Math.floor(bytes.length * 0.7)));
  const target = path.join(dir, 'data');
  fs.mkdirSync(target);
  fs.writeFileSync(path.join(target, 'keep'), 'x');
  const r = await cli(['backup', 'restore', a.path, '--target', target, '--force-any']);
  t.equal(r.code, 1);
  t.match(r.stderr, /GUTS_CORRUPT: .*archive truncated/);
  t.same(fs.readdirSync(target), ['keep']);
  t.same(
    fs.readdirSync(dir).filter((n) => n.includes('.restore-')),
    [],
  );
  // a sidecar that does not match is refused too
  const b = buildArchive(dir, 'b.tar.zst', { files: sampleFiles() });
  fs.writeFileSync(b.path + '.sha256', `${'f'.repeat(64)}  b.tar.zst\n`);
  const rb = await cli(['backup', 'restore', b.path, '--target', path.join(dir, 'other')]);
  t.equal(rb.code, 1);
  t.match(rb.stderr, /GUTS_CORRUPT: SHA-256 of/);
  t.notOk(fs.existsSync(path.join(dir, 'other')));
});

t.test('a symlinked target is restored into the directory it points to', async (t) => {
  const dir = t.testdir();
  const a = buildArchive(dir, 'a.tar.zst', { files: sampleFiles() });
  const real = path.join(dir, 'disk', 'guts');
  fs.mkdirSync(real, { recursive: true });
  fs.symlinkSync(real, path.join(dir, 'data'));
  const r = await cli(['backup', 'restore', a.path, '--target', path.join(dir, 'data'), '--json']);
  t.equal(r.code, 0, r.stderr);
  t.equal(JSON.parse(r.stdout).target, real);
  t.ok(fs.lstatSync(path.join(dir, 'data')).isSymbolicLink(), 'the link is kept');
  t.same(fs.readdirSync(real).sort(), ['consensus', 'db']);
});

t.test('a target that is a mount point (new disk) is staged inside and swapped entry by entry', async (t) => {
  const dir = t.testdir();
  const a = buildArchive(dir, 'a.tar.zst', { files: sampleFiles() });
  const mnt = path.join(dir, 'mnt');
  fs.mkdirSync(mnt);
  const script = [
    `mount -t tmpfs none ${mnt}`,
    `mkdir ${mnt}/lost+found ${mnt}/checkpoints && echo old > ${mnt}/checkpoints/x`,
    `${process.execPath} ${CLI} backup restore ${a.path} --target ${mnt} && echo FIRST-REFUSED-NOT`,
    `${process.execPath} ${CLI} backup restore ${a.path} --target ${mnt} --force --json > ${dir}/out.json`,
    `ls -A ${mnt} > ${dir}/ls.txt`,
    `cmp ${mnt}/db/000013.sst ${dir}/expect.sst && echo SAME`,
  ].join('; ');
  fs.writeFileSync(path.join(dir, 'expect.sst'), sampleFiles()[1].data);
  let out: string;
  try {
    out = require('node:child_process').execFileSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    t.skip(`cannot mount a tmpfs here: ${(e as Error).message.split('\n')[0]}`);
    return;
  }
  t.notMatch(out, /FIRST-REFUSED-NOT/, 'a non-empty mount point needs --force');
  t.match(out, /SAME/);
  t.same(fs.readFileSync(path.join(dir, 'ls.txt'), 'utf8').trim().split('\n').sort(), ['consensus', 'db', 'lost+found'], 'old entries removed, lost+found kept, no staging left');
  t.match(JSON.parse(fs.readFileSync(path.join(dir, 'out.json'), 'utf8')), { target: mnt, replaced_existing: true });
});
