// backup create --repo of a stopped store (src/backup/repo-create.ts
// stoppedStoreCheckpoint): the checkpoint comes from a read-only open, so
// the store is left exactly as it was (no new MANIFEST, OPTIONS or WAL),
// objects still only in the WAL are in the snapshot (its WAL copy) and
// restore to the same counts; a store another process holds is refused with
// GUTS_LOCKED (the read-write fallback's error), and objects stored in a
// local repository leave no temp file behind.
import t, { Test } from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';

import { GutsStore } from '../../src/store';
import { BIN } from '../lib/node-proc';

const ENV = { GUTS_CONFIG: '/dev/null' };

function json(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args, '--json'], { env: { ...process.env, ...ENV }, encoding: 'utf8', timeout: 120_000 });
  let body: Record<string, any> = {};
  try {
    body = JSON.parse(r.stdout);
  } catch {
    /* left empty: the assertions fail with stderr */
  }
  return { code: r.status, stderr: r.stderr, body };
}

function tmp(t: Test): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'guts-repo-stopped-'));
  t.teardown(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

/** Adds `n` random blobs to repository t/w; with `flush` false they stay in the WAL only. */
async function put(dataDir: string, n: number, flush: boolean): Promise<void> {
  const store = await GutsStore.open(dataDir);
  try {
    await store.putRepo('t/w');
    const batch = Array.from({ length: n }, (_, i) => ({ type: 'blob' as const, data: Buffer.from(`${i} ${crypto.randomBytes(64).toString('hex')}\n`) }));
    await store.putObjects('t/w', batch);
    if (flush) await store.flush();
  } finally {
    await store.close();
  }
}

/** Names and sizes of the store's files, LOG files left out (a read-only open rotates its info log). */
function storeFiles(dataDir: string): string[] {
  const out: string[] = [];
  for (const sub of ['db', 'consensus'])
    for (const n of fs.readdirSync(path.join(dataDir, sub)).sort()) if (!n.startsWith('LOG')) out.push(`${sub}/${n}:${fs.statSync(path.join(dataDir, sub, n)).size}`);
  return out;
}

function hidden(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.name.startsWith('.')) out.push(path.join(d, e.name));
      if (e.isDirectory()) walk(path.join(d, e.name));
    }
  };
  walk(dir);
  return out;
}

t.test('a stopped store is snapshotted without being written to; WAL-only objects are in the snapshot', async (t) => {
  const dir = tmp(t);
  const data = path.join(dir, 'data');
  const repo = path.join(dir, 'repo');
  await put(data, 2000, true);
  const a = json(['--data-dir', data, 'backup', 'create', '--repo', repo]);
  t.equal(a.code, 0, `first snapshot: ${a.stderr}`);

  await put(data, 300, false); // these 300 blobs are only in the WAL
  const before = storeFiles(data);
  t.ok(
    before.some((f) => /^db\/\d+\.log:[1-9]/.test(f)),
    'the store has a non-empty WAL',
  );
  const b = json(['--data-dir', data, 'backup', 'create', '--repo', repo]);
  t.equal(b.code, 0, `second snapshot: ${b.stderr}`);
  t.same(storeFiles(data), before, 'the store has the same files with the same sizes afterwards (no new MANIFEST, OPTIONS or WAL)');
  t.same(fs.readdirSync(path.join(data, 'checkpoints')), [], 'the checkpoint is gone');
  t.same(hidden(repo), [], 'no temp file is left in the repository');

  const manifest = JSON.parse(fs.readFileSync(path.join(repo, 'snapshots', `${b.body.snapshot}.json`), 'utf8'));
  t.ok(
    manifest.files.some((f: { path: string; size: number }) => /^db\/\d+\.log$/.test(f.path) && f.size > 0),
    'the snapshot holds the WAL copy',
  );
  const want = json(['verify', '--data-dir', data, '--full']).body.counts;
  t.equal(want.blob, 2300, 'the store counts 2300 blobs');

  const target = path.join(dir, 'restored');
  const r = json(['backup', 'restore', '--repo', repo, '--snapshot', b.body.snapshot, '--target', target, '--verify']);
  t.equal(r.code, 0, `restore --verify: ${r.stderr}`);
  const got = json(['verify', '--data-dir', target, '--full']);
  t.equal(got.body.ok, true, 'the restored store verifies --full');
  t.same(got.body.counts, want, 'the restored store has the same counts, WAL-only blobs included');
  const v = json(['backup', 'verify', '--repo', repo]);
  t.equal(v.body.status, 'VALID', 'the repository verifies');
});

t.test('a store another process holds (no node socket) is refused with GUTS_LOCKED, nothing written', async (t) => {
  const dir = tmp(t);
  const data = path.join(dir, 'data');
  const repo = path.join(dir, 'repo');
  await put(data, 100, true);
  // a process that holds the store open and answers on no socket
  const storeModule = path.join(__dirname, '..', '..', 'dist', 'src', 'store');
  const holder = spawn(
    process.execPath,
    ['-e', `require(${JSON.stringify(storeModule)}).GutsStore.open(process.argv[1]).then(() => { console.log('open'); setInterval(() => {}, 1000); })`, data],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...ENV } },
  );
  t.teardown(() => {
    holder.kill('SIGKILL');
  });
  await new Promise<void>((resolve, reject) => {
    readline.createInterface({ input: holder.stdout! }).on('line', (l) => l === 'open' && resolve());
    holder.on('exit', (c) => reject(new Error(`holder exited ${c}`)));
  });
  const r = json(['--data-dir', data, 'backup', 'create', '--repo', repo]);
  t.not(r.code, 0, 'create fails');
  t.equal(r.body.error?.code, 'GUTS_LOCKED', `GUTS_LOCKED: ${r.stderr}`);
  t.same(fs.existsSync(path.join(repo, 'snapshots')) ? fs.readdirSync(path.join(repo, 'snapshots')) : [], [], 'no snapshot');
});
