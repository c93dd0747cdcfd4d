// Restore never touches a live store (issue 11 item 1): a target that equals,
// lies inside or contains a data dir served by a running node, or any store a
// process holds open, is refused with GUTS_LOCKED (exit 3) before anything is
// created; --force replaces only what looks like a data dir.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { lockHeldUnder, resolveStorePath } from '../src/restore-guard';
import { buildArchive, sampleFiles } from './fixtures/archives';
import { cli, holdStore } from './fixtures/cli';
import { startNode } from './lib/node-proc';

const ENV = { GUTS_CONFIG: '/dev/null' };

/** Every entry under dir (relative path -> size or "dir"), to prove nothing changed. */
function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string, rel: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        out[r] = 'dir';
        walk(path.join(d, e.name), r);
      } else out[r] = String(fs.lstatSync(path.join(d, e.name)).size);
    }
  };
  walk(dir, '');
  return out;
}

/** Every path under dir with its inode: a live store keeps appending to its LOG files, so sizes may change. */
function inodes(dir: string): string[] {
  return Object.keys(tree(dir)).map((p) => `${p}:${fs.lstatSync(path.join(dir, p)).ino}`);
}

/** Staging dirs or other restore leftovers anywhere under root. */
function restoreLeftovers(root: string): string[] {
  return Object.keys(tree(root)).filter((p) => /\.restore-\d+\.staging|\.guts-restore-/.test(p));
}

function counts(dataDir: string) {
  const r = cli(['--data-dir', dataDir, 'status', '--json'], { env: ENV });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout).counts;
}

t.test('a running node: target = D, D/db, D/db/.., D/new, the parent of D, a symlink to D: exit 3, node unharmed', async (t) => {
  const root = t.testdir({ 'notes.txt': 'keep me\n' });
  const D = path.join(root, 'D');
  const seed = cli(['--data-dir', D, 'dev', 'seed', '--size', '4MiB'], { env: ENV });
  t.equal(seed.status, 0, seed.stderr);
  const archive = buildArchive(root, 'a.tar.zst', { files: sampleFiles() }).path;
  fs.symlinkSync(D, path.join(root, 'link-to-D'));
  fs.mkdirSync(path.join(root, 'elsewhere'));
  fs.symlinkSync('../D/db', path.join(root, 'elsewhere', 'db-link'));

  const node = await startNode(D, [], ENV);
  t.teardown(() => node.stop());
  const before = counts(D);
  t.ok(before.blob > 0, 'seeded');
  const filesBefore = inodes(D);

  const targets = [D, path.join(D, 'db'), `${D}/db/..`, path.join(D, 'new-dir'), root, path.join(root, 'link-to-D'), `${root}/elsewhere/db-link/..`];
  for (const target of targets) {
    for (const force of target === D ? [[], ['--force'], ['--force-any']] : [['--force-any']]) {
      const r = cli(['backup', 'restore', archive, '--target', target, ...force], { env: ENV });
      t.equal(r.status, 3, `${target} ${force.join(' ')}: exit 3 (${r.stderr.trim()})`);
      t.match(r.stderr, /^guts-node: GUTS_LOCKED: /, target);
    }
  }
  // the default target (storage.data_dir / --data-dir) goes through the same check
  const viaDefault = cli(['--data-dir', D, 'backup', 'restore', archive, '--force'], { env: ENV });
  t.equal(viaDefault.status, 3, viaDefault.stderr);

  t.same(inodes(D), filesBefore, 'no file of the live data dir was replaced, added or removed');
  t.same(restoreLeftovers(root), [], 'no staging dir was created anywhere');
  t.notOk(fs.existsSync(path.join(D, 'new-dir')), 'not even the missing target was created');
  t.equal(fs.readFileSync(path.join(root, 'notes.txt'), 'utf8'), 'keep me\n');
  t.same(counts(D), before, 'the node still serves the same data');

  t.same(await node.stop(), { code: 0, signal: null }, 'clean stop');
  const again = await startNode(D, [], ENV);
  t.same(counts(D), before, 'the next serve opens the store with the same counts');
  await again.stop();
});

t.test('a store held open by another process (no node): the dir, inside it and its parent are refused', async (t) => {
  const root = t.testdir();
  const held = path.join(root, 'sub', 'held');
  fs.mkdirSync(path.dirname(held));
  t.equal(cli(['--data-dir', held, 'dev', 'seed', '--size', '4MiB'], { env: ENV }).status, 0);
  const archive = buildArchive(root, 'a.tar.zst', { files: sampleFiles() }).path;
  const holder = await holdStore(held);
  t.teardown(() => {
    holder.kill('SIGKILL');
  });
  const files = inodes(root);
  for (const target of [held, path.join(held, 'consensus'), path.join(root, 'sub'), root]) {
    const r = cli(['backup', 'restore', archive, '--target', target, '--force-any'], { env: ENV });
    t.equal(r.status, 3, `${target}: ${r.stderr.trim()}`);
    t.match(r.stderr, /GUTS_LOCKED: .*process \d+/);
  }
  t.same(inodes(root), files, 'nothing created or removed');

  // The fallback for holders whose open files cannot be read (another user's
  // process): LOCK files found under the target at a bounded depth.
  const viaWalk = lockHeldUnder(root, { inspectHolders: false });
  t.ok(viaWalk && [path.join(held, 'db', 'LOCK'), path.join(held, 'consensus', 'LOCK')].includes(viaWalk.file), `found ${viaWalk?.file}`);
  t.equal(viaWalk?.pid, holder.pid);
  t.equal(lockHeldUnder(root)?.pid, holder.pid, 'through the holder\'s open files');
  t.equal(lockHeldUnder(path.join(root, 'elsewhere'), { inspectHolders: false }), null);

  holder.kill('SIGKILL');
  await new Promise((r) => holder.once('exit', r));
  const r = cli(['backup', 'restore', archive, '--target', held, '--force'], { env: ENV });
  t.equal(r.status, 0, `once the holder is gone the restore runs: ${r.stderr}`);
});

t.test('--force replaces a data dir but refuses any other directory; --force-any replaces it', async (t) => {
  const root = t.testdir({
    home: { '.bashrc': 'export X=1\n', src: { 'main.c': 'int main(){}\n' }, db: { 'notes.txt': 'x' } },
    data: { db: { 'OLD.sst': 'old' }, consensus: {}, checkpoints: {}, 'last-backup.json': '{}', 'node.pid': '1\n', 'lost+found': {} },
  });
  const archive = buildArchive(root, 'a.tar.zst', { files: sampleFiles() }).path;
  const home = path.join(root, 'home');
  const before = tree(home);

  const plain = cli(['backup', 'restore', archive, '--target', home], { env: ENV });
  t.equal(plain.status, 2);
  t.match(plain.stderr, /GUTS_EXISTS: .*is not empty/);
  const forced = cli(['backup', 'restore', archive, '--target', home, '--force', '--json'], { env: ENV });
  t.equal(forced.status, 2, forced.stderr);
  t.match(forced.stderr, /^guts-node: GUTS_EXISTS: .*does not look like a guts data dir.*--force-any/);
  t.same(tree(home), before, 'left intact');
  t.same(restoreLeftovers(root), []);

  const data = cli(['backup', 'restore', archive, '--target', path.join(root, 'data'), '--force'], { env: ENV });
  t.equal(data.status, 0, data.stderr);
  t.same(fs.readdirSync(path.join(root, 'data')).sort(), ['consensus', 'db']);

  const any = cli(['backup', 'restore', archive, '--target', home, '--force-any'], { env: ENV });
  t.equal(any.status, 0, any.stderr);
  t.same(fs.readdirSync(home).sort(), ['consensus', 'db']);
});

t.test('resolveStorePath: "..", symlinked ancestors and missing tails resolve physically', async (t) => {
  const root = fs.realpathSync(t.testdir({ real: { a: {} } }));
  fs.symlinkSync(path.join(root, 'real', 'a'), path.join(root, 'l'));
  t.equal(resolveStorePath(path.join(root, 'l')), path.join(root, 'real', 'a'));
  t.equal(resolveStorePath(path.join(root, 'l', 'x', 'y')), path.join(root, 'real', 'a', 'x', 'y'));
  t.equal(resolveStorePath(`${root}/l/../a`), path.join(root, 'real', 'a'), '".." after a link is the parent of where it points (as the kernel reads it)');
  t.equal(resolveStorePath(`${root}/l/new/../b/./c`), path.join(root, 'real', 'a', 'b', 'c'), '".." within the missing tail');
  t.equal(resolveStorePath('rel'), path.join(fs.realpathSync(process.cwd()), 'rel'));
});
