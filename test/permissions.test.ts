// Stores are private to their owner (issue 11 item 3): data dirs, staging dirs
// and restored stores 0700, files 0600, whatever the caller's umask; existing
// stores that are not get a warning from verify --data-dir, status and serve;
// `keygen > file` makes the file 0600.
import t from 'tap';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { buildArchive, sampleFiles } from './fixtures/archives';
import { BIN, cli } from './fixtures/cli';
import { pushObjects, startNode } from './lib/node-proc';

const ENV = { GUTS_CONFIG: '/dev/null' };

// The test process runs with the usual 022: the CLI must not depend on its caller's umask.
process.umask(0o022);

/** "rel mode" for every entry under dir whose mode is not 0700 (dirs) / 0600 (files, sockets); [] when private. */
function notPrivate(dir: string): string[] {
  const out: string[] = [];
  const check = (p: string, rel: string) => {
    const st = fs.lstatSync(p);
    const mode = st.mode & 0o7777;
    const want = st.isDirectory() ? 0o700 : 0o600;
    if (mode !== want) out.push(`${rel || '.'} ${mode.toString(8)}`);
    if (st.isDirectory()) for (const name of fs.readdirSync(p)) check(path.join(p, name), rel ? `${rel}/${name}` : name);
  };
  check(dir, '');
  return out;
}

function count(dir: string): number {
  let n = 0;
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      n++;
      if (e.isDirectory()) walk(path.join(d, e.name));
    }
  };
  walk(dir);
  return n;
}

t.test('a seeded store, its backup checkpoint records and a restored store are 0700 / 0600', async (t) => {
  const root = t.testdir();
  const D = path.join(root, 'D');
  const seed = cli(['--data-dir', D, 'dev', 'seed', '--size', '4MiB'], { env: ENV });
  t.equal(seed.status, 0, seed.stderr);
  const backup = cli(['--data-dir', D, 'backup', 'create', '--output', path.join(root, 'b.tar.zst')], { env: ENV });
  t.equal(backup.status, 0, backup.stderr);
  t.ok(count(D) > 10, `${count(D)} entries checked`);
  t.same(notPrivate(D), [], 'every dir 0700, every file 0600 under a fresh seeded store');

  // the archive records owner-only modes (stock tar extracts a private store too)
  const listing = require('node:child_process').execFileSync('tar', ['-I', 'zstd', '-tvf', path.join(root, 'b.tar.zst')], { encoding: 'utf8' }) as string;
  const modes = new Set(listing.trim().split('\n').map((l) => l.split(/\s+/)[0]));
  t.same([...modes].sort(), ['-rw-------', 'drwx------'], 'archive entry modes');

  // an archive that says 0644 (older archives, other tools) still restores private
  const old = buildArchive(root, 'old.tar.zst', { files: sampleFiles() });
  const target = path.join(root, 'deep', 'restored');
  const r = cli(['backup', 'restore', old.path, '--target', target], { env: ENV });
  t.equal(r.status, 0, r.stderr);
  t.same(notPrivate(target), [], 'restored store private');
  t.equal(fs.statSync(path.dirname(target)).mode & 0o777, 0o700, 'parent created for it: 0700');
  // over an existing 0755 target (RENAME_EXCHANGE): the new dir is the 0700 staging dir
  const existing = path.join(root, 'existing');
  fs.mkdirSync(path.join(existing, 'db'), { recursive: true, mode: 0o755 });
  fs.chmodSync(existing, 0o755);
  const f = cli(['backup', 'restore', old.path, '--target', existing, '--force'], { env: ENV });
  t.equal(f.status, 0, f.stderr);
  t.same(notPrivate(existing), [], 'replaced store private');
});

t.test("a node's data dir (created by serve) is private while it runs and after it stops", async (t) => {
  const root = t.testdir();
  const D = path.join(root, 'node-data');
  const node = await startNode(D, [], ENV);
  t.teardown(() => node.stop());
  const blobs = Array.from({ length: 50 }, (_, i) => ({ type: 'blob', data: Buffer.from(`blob ${i}\n`.repeat(100)) }));
  t.equal((await pushObjects(node.url, 'alice/one', blobs)).status, 200);
  // a hot backup through the node: checkpoints/ and last-backup.json
  const hot = cli(['--data-dir', D, 'backup', 'create', '--hot', '--output', path.join(root, 'hot.tar.zst')], { env: ENV });
  t.equal(hot.status, 0, hot.stderr);
  t.ok(fs.existsSync(path.join(D, 'node.pid')) && fs.existsSync(path.join(D, 'admin.sock')));
  t.same(notPrivate(D), [], 'running: node.pid, admin.sock, db/, consensus/, checkpoints/ all private');
  t.notMatch(node.stderr(), /accessible to group\/other/, 'no permission warning for a private store');
  await node.stop();
  t.ok(fs.readdirSync(path.join(D, 'db')).some((n) => n.endsWith('.sst')), 'flushed SST files exist');
  t.same(notPrivate(D), [], 'stopped: SST files written at shutdown private too');
});

t.test('verify --data-dir, status and serve warn about a group/other-readable store', async (t) => {
  const root = t.testdir();
  const D = path.join(root, 'D');
  t.equal(cli(['--data-dir', D, 'dev', 'seed', '--size', '4MiB'], { env: ENV }).status, 0);
  const quiet = cli(['verify', '--data-dir', D, '--json'], { env: ENV });
  t.equal(quiet.status, 0, quiet.stderr);
  t.same(JSON.parse(quiet.stdout).warnings, [], 'private store: no warnings');
  t.notMatch(quiet.stderr, /warning/);

  // as a store made by an older version (or copied with cp -r) would be
  fs.chmodSync(D, 0o755);
  fs.chmodSync(path.join(D, 'db'), 0o755);
  const sst = fs.readdirSync(path.join(D, 'db')).filter((n) => n.endsWith('.sst'));
  for (const n of sst) fs.chmodSync(path.join(D, 'db', n), 0o644);

  const v = cli(['verify', '--data-dir', D, '--json'], { env: ENV });
  t.equal(v.status, 0, 'a warning is not a failed check');
  const w = JSON.parse(v.stdout).warnings as string[];
  t.equal(w.length, 2, 'one warning for the dirs, one for the files');
  t.match(w[0], `${D} (0755)`);
  t.match(w[1], new RegExp(`^${sst.length} store files are accessible to group/other users`));
  t.match(v.stderr, /^warning: store directories are accessible to group\/other users/m);
  const human = cli(['verify', '--data-dir', D], { env: ENV });
  t.equal(human.status, 0);
  t.equal(human.stderr.split('\n').filter((l) => l.startsWith('warning: ')).length, 2);

  const s = cli(['--data-dir', D, 'status', '--json'], { env: ENV });
  t.equal(s.status, 0, s.stderr);
  t.same(JSON.parse(s.stdout).warnings, w);
  t.match(s.stderr, /^warning: /m);

  const node = await startNode(D, [], ENV);
  t.teardown(() => node.stop());
  t.match(node.stderr(), /accessible to group\/other users/, 'serve logs it at start');
  const live = cli(['--data-dir', D, 'status', '--json'], { env: ENV });
  t.equal(JSON.parse(live.stdout).warnings.length, 2, 'status of a running node too');
  await node.stop();

  fs.chmodSync(D, 0o700);
  fs.chmodSync(path.join(D, 'db'), 0o700);
  for (const n of sst) fs.chmodSync(path.join(D, 'db', n), 0o600);
  t.same(JSON.parse(cli(['verify', '--data-dir', D, '--json'], { env: ENV }).stdout).warnings, [], 'fixed: no warnings');
});

t.test('keygen > file: the file becomes 0600 before the key is written, and stderr says so', async (t) => {
  const dir = t.testdir();
  const file = path.join(dir, 'node.key');
  const fd = fs.openSync(file, 'w', 0o644); // what `>` makes under umask 022
  t.equal(fs.fstatSync(fd).mode & 0o777, 0o644);
  const child = spawn(process.execPath, [BIN, 'keygen'], { stdio: ['ignore', fd, 'pipe'], env: { ...process.env, ...ENV } });
  fs.closeSync(fd);
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const code = await new Promise((r) => child.on('exit', r));
  t.equal(code, 0, stderr);
  t.equal(fs.statSync(file).mode & 0o777, 0o600);
  t.match(stderr, `wrote the node key to ${file}, set to mode 0600`);
  t.match(fs.readFileSync(file, 'utf8'), /^[0-9a-f]{64}\n[0-9a-f]{64}\n$/);

  // to a pipe: the key on stdout, nothing to chmod, nothing said
  const piped = cli(['keygen'], { env: ENV });
  t.equal(piped.status, 0);
  t.match(piped.stdout, /^[0-9a-f]{64}\n[0-9a-f]{64}\n$/);
  t.equal(piped.stderr, '');
});
