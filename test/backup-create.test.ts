// guts-node backup create, end to end: a store seeded with real git objects,
// archives checked with stock tar / zstd / gzip / sha256sum and an
// independent XXH3-128 (xxhash-addon), failure paths with real processes.
import t from 'tap';
import { ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { XXHash128 } = require('xxhash-addon') as { XXHash128: { hash(b: Buffer): Buffer } };

import { ArchiveEntrySpec, native } from '../src/native';
import { GitObject, GutsStore } from '../src/store';
import { groupDigits } from '../src/progress';

const ROOT = path.resolve(__dirname, '..');
const BIN = path.join(ROOT, 'bin', 'guts-node.js');

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function cli(dataDir: string, args: string[], env: NodeJS.ProcessEnv = {}): Run {
  const r = spawnSync(process.execPath, [BIN, '--data-dir', dataDir, ...args], {
    encoding: 'utf8',
    env: { ...process.env, GUTS_CONFIG: '/dev/null', ...env },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function sha256(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** A real git repository's objects (3 commits, trees, blobs) read back with git cat-file. */
function gitObjects(dir: string): Array<GitObject & { id: string }> {
  const git = (...args: string[]) => execFileSync('git', args, { cwd: dir, encoding: 'utf8', env: { ...process.env, GIT_AUTHOR_NAME: 'A', GIT_AUTHOR_EMAIL: 'a@example.com', GIT_COMMITTER_NAME: 'A', GIT_COMMITTER_EMAIL: 'a@example.com' } });
  fs.mkdirSync(dir, { recursive: true });
  git('init', '-q');
  for (let i = 0; i < 3; i++) {
    fs.mkdirSync(path.join(dir, 'src'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'README.md'), `# demo\nrevision ${i}\n`);
    fs.writeFileSync(path.join(dir, 'src', `mod${i}.js`), `export const v${i} = ${i};\n`.repeat(50));
    git('add', '-A');
    git('commit', '-q', '-m', `commit ${i}`);
  }
  const ids = git('cat-file', '--batch-all-objects', '--batch-check=%(objectname) %(objecttype)').trim().split('\n');
  return ids.map((line) => {
    const [id, type] = line.split(' ');
    const data = execFileSync('git', ['cat-file', type, id], { cwd: dir });
    return { id, type: type as GitObject['type'], data };
  });
}

interface Seeded {
  objects: Array<GitObject & { id: string }>;
}

/** Seeds dataDir: real git objects in two repos, `mb` of extra blobs, 20 consensus blocks. */
async function seed(dataDir: string, scratch: string, mb: number, text = false): Promise<Seeded> {
  const store = await GutsStore.open(dataDir);
  try {
    const objects = gitObjects(scratch);
    for (const repo of ['acme/web', 'acme/api']) {
      await store.putRepo(repo, { description: repo });
      const r = await store.putObjects(repo, objects);
      t.same(r.ids, objects.map((o) => o.id), 'store ids equal git ids');
    }
    await store.putRepo('alice/blobs');
    let bytes = 0;
    let n = 0;
    while (bytes < mb * 1e6) {
      const batch: Array<GitObject & { id: string }> = [];
      for (let i = 0; i < 64; i++, n++) {
        const data = text
          ? Buffer.from(`// file ${n}\n` + Array.from({ length: 400 }, (_, j) => `line ${j} of ${n}: ${crypto.randomBytes(6).toString('hex')} lorem ipsum dolor sit amet\n`).join(''))
          : crypto.randomBytes(2000 + ((n * 7919) % 30000));
        batch.push({ type: 'blob', data, id: '' });
        bytes += data.length;
      }
      const r = await store.putObjects('alice/blobs', batch);
      r.ids.forEach((id, i) => (batch[i].id = id));
      objects.push(...batch);
    }
    await store.putBlocks(Array.from({ length: 20 }, (_, h) => ({ height: h, data: Buffer.from(`block ${h}`) })), 17);
    return { objects };
  } finally {
    await store.close();
  }
}

function extract(archive: string, dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  if (archive.endsWith('.tar.zst')) execFileSync('tar', ['-I', 'zstd', '-xf', archive, '-C', dir]);
  else if (archive.endsWith('.tar.gz')) execFileSync('tar', ['-xzf', archive, '-C', dir]);
  else execFileSync('tar', ['-xf', archive, '-C', dir]);
}

function tarNames(archive: string): string[] {
  const flags = archive.endsWith('.tar.zst') ? ['-I', 'zstd', '-tf'] : archive.endsWith('.tar.gz') ? ['-tzf'] : ['-tf'];
  return execFileSync('tar', [...flags, archive], { encoding: 'utf8' }).trim().split('\n');
}

interface Manifest {
  format: string;
  format_version: number;
  kind: string;
  created: string;
  source_data_dir: string;
  objects: Record<string, number>;
  repositories: number;
  consensus: { blocks: number; finalized_height: number };
  rocksdb: { db?: { sequence: number }; consensus?: { sequence: number } };
  compression: { format: string };
  files: Array<{ path: string; size: number; mode: number; mtime: number; xxh3: string }>;
  total_bytes: number;
}

function listFiles(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...listFiles(dir, p));
    else out.push(p);
  }
  return out.sort();
}

function checkpointsLeft(dataDir: string): string[] {
  try {
    return fs.readdirSync(path.join(dataDir, 'checkpoints'));
  } catch {
    return [];
  }
}

t.test('create .tar.zst / .tar.gz / .tar: stock tools extract the checkpoint', async (t) => {
  const dir = t.testdir({ out: {} });
  const dataDir = path.join(dir, 'data');
  const seeded = await seed(dataDir, path.join(dir, 'git'), 6);
  const before = await (async () => {
    const s = await GutsStore.open(dataDir);
    try {
      return { counts: await s.counts(), consensus: await s.consensusInfo() };
    } finally {
      await s.close();
    }
  })();

  for (const ext of ['tar.zst', 'tar.gz', 'tar']) {
    await t.test(ext, async (t) => {
      const out = path.join(dir, 'out', `guts.${ext}`);
      const r = cli(dataDir, ['backup', 'create', '--output', out, '--json', '--threads', '2']);
      t.equal(r.status, 0, r.stderr);
      const res = JSON.parse(r.stdout);
      t.equal(res.file, out);
      t.equal(res.size_bytes, fs.statSync(out).size);
      t.equal(res.sha256, sha256(out));
      t.equal(res.kind, 'full');
      t.match(res.created, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      t.same(res.objects, { commit: before.counts.commit, tree: before.counts.tree, blob: before.counts.blob, tag: 0 });
      t.equal(res.repositories, 3);
      t.equal(typeof res.duration_seconds, 'number');

      // modes, sidecar, stock checks
      t.equal(fs.statSync(out).mode & 0o777, 0o600, 'archive is 0600');
      t.equal(fs.statSync(`${out}.sha256`).mode & 0o777, 0o600, 'sidecar is 0600');
      t.equal(fs.readFileSync(`${out}.sha256`, 'utf8'), `${res.sha256}  guts.${ext}\n`);
      t.match(execFileSync('sha256sum', ['-c', `guts.${ext}.sha256`], { cwd: path.dirname(out), encoding: 'utf8' }), /: OK/);
      if (ext === 'tar.zst') execFileSync('zstd', ['-t', '-q', out]);
      if (ext === 'tar.gz') execFileSync('gzip', ['-t', out]);
      t.notOk(fs.existsSync(`${out}.partial`), 'no partial left');
      t.same(checkpointsLeft(dataDir), [], 'checkpoint removed');

      // entry order: GUTS-INDEX first, data dirs, MANIFEST.json last
      const names = tarNames(out);
      t.equal(names[0], 'GUTS-INDEX');
      t.equal(names[names.length - 1], 'MANIFEST.json');
      t.equal(names[1], 'db/');
      t.ok(names.includes('consensus/'));

      const x = path.join(dir, `x-${ext}`);
      extract(out, x);
      const m = JSON.parse(fs.readFileSync(path.join(x, 'MANIFEST.json'), 'utf8')) as Manifest;
      t.equal(m.format, 'guts-backup');
      t.equal(m.format_version, 1);
      t.equal(m.kind, 'full');
      t.equal(m.source_data_dir, dataDir);
      t.equal(m.created, res.created);
      t.same(m.objects, res.objects);
      t.equal(m.repositories, 3);
      t.same(m.consensus, { blocks: 20, finalized_height: 17 });
      t.ok(m.rocksdb.db!.sequence > 0 && m.rocksdb.consensus!.sequence > 0, 'sequences recorded');
      t.equal(m.compression.format, ext === 'tar.zst' ? 'zstd' : ext === 'tar.gz' ? 'gzip' : 'none');

      // every extracted data file is in the manifest and index, in order, with
      // its size, mode, mtime and an independently computed XXH3-128
      const dataFiles = listFiles(x).filter((f) => f !== 'MANIFEST.json' && f !== 'GUTS-INDEX');
      t.same(m.files.map((f) => f.path).sort(), dataFiles);
      const index = fs.readFileSync(path.join(x, 'GUTS-INDEX'), 'utf8').trim().split('\n');
      t.equal(index[0], 'guts-index 1');
      t.same(index.slice(1), m.files.map((f) => `${f.size} ${f.mode.toString(8).padStart(4, '0')} ${f.path}`));
      t.same(names.filter((n) => !n.endsWith('/')).slice(1, -1), m.files.map((f) => f.path), 'archive order = manifest order');
      let total = 0;
      for (const f of m.files) {
        const p = path.join(x, f.path);
        const st = fs.statSync(p);
        const ok = st.size === f.size && (st.mode & 0o7777) === f.mode && Math.floor(st.mtimeMs / 1000) === f.mtime && XXHash128.hash(fs.readFileSync(p)).toString('hex') === f.xxh3;
        if (!ok) t.fail(`${f.path} differs from its manifest entry`);
        total += f.size;
      }
      t.equal(m.total_bytes, total);
      // SST files are immutable hard links of the live ones: byte for byte equal, same mtime; recorded owner-only (0600)
      const ssts = m.files.filter((f) => f.path.endsWith('.sst'));
      t.ok(ssts.length >= 2, 'archive holds SST files');
      for (const f of ssts) {
        const live = path.join(dataDir, f.path);
        t.equal(sha256(path.join(x, f.path)), sha256(live), `${f.path} equals the live SST`);
        t.equal(f.mode, 0o600);
        t.equal(Math.floor(fs.statSync(live).mtimeMs / 1000), f.mtime);
      }
      t.equal(fs.statSync(path.join(x, 'db')).mode & 0o777, 0o700);

      // the extract is a working data dir holding the very same objects
      const s = await GutsStore.open(x, { create: false });
      try {
        t.same(await s.counts(), before.counts);
        t.same(await s.consensusInfo(), before.consensus);
        for (const o of seeded.objects.filter((_, i) => i % 7 === 0)) {
          const got = await s.getObject(o.id);
          if (!got || got.type !== o.type || !got.data.equals(o.data)) t.fail(`object ${o.id} differs after restore`);
        }
        t.same((await s.listRepos()).map((r) => r.name).sort(), ['acme/api', 'acme/web', 'alice/blobs']);
      } finally {
        await s.close();
      }
      t.same(JSON.parse(fs.readFileSync(path.join(dataDir, 'last-backup.json'), 'utf8')).full, {
        file: out,
        size_bytes: res.size_bytes,
        created: res.created,
        kind: 'full',
        checksum: `sha256:${res.sha256}`,
      });
    });
  }

  await t.test('an existing non-archive output needs --force (an archive is rotated: test/rotation.test.ts)', async (t) => {
    const out = path.join(dir, 'out', 'notes.tar.zst');
    fs.writeFileSync(out, 'not a backup\n');
    const old = sha256(out);
    const r = cli(dataDir, ['backup', 'create', '--output', out]);
    t.equal(r.status, 2);
    t.match(r.stderr, /GUTS_EXISTS: .*notes\.tar\.zst already exists/);
    t.equal(sha256(out), old, 'untouched');
    const f = cli(dataDir, ['backup', 'create', '--output', out, '--force', '--level', '5']);
    t.equal(f.status, 0, f.stderr);
    t.match(f.stderr, /Backup created: /);
    t.match(execFileSync('sha256sum', ['-c', 'notes.tar.zst.sha256'], { cwd: path.dirname(out), encoding: 'utf8' }), /: OK/);
  });

  await t.test('consensus-only holds only consensus/', async (t) => {
    const out = path.join(dir, 'out', 'consensus.tar.gz');
    const r = cli(dataDir, ['backup', 'create', '--consensus-only', '--output', out, '--json']);
    t.equal(r.status, 0, r.stderr);
    const res = JSON.parse(r.stdout);
    t.equal(res.kind, 'consensus-only');
    t.same(res.objects, { commit: 0, tree: 0, blob: 0, tag: 0 }, 'no objects in a consensus-only archive');
    const names = tarNames(out);
    t.equal(names[0], 'GUTS-INDEX');
    t.equal(names[names.length - 1], 'MANIFEST.json');
    t.same(names.slice(1, -1).filter((n) => !n.startsWith('consensus/')), [], 'nothing but consensus/');
    t.ok(names.includes('consensus/CURRENT'));
    const x = path.join(dir, 'x-consensus');
    extract(out, x);
    const m = JSON.parse(fs.readFileSync(path.join(x, 'MANIFEST.json'), 'utf8')) as Manifest;
    t.equal(m.kind, 'consensus-only');
    t.notOk(m.rocksdb.db);
    t.same(m.consensus, { blocks: 20, finalized_height: 17 });
    t.equal(m.repositories, 0);
  });

  await t.test('--hot, --include-key and --include-config', async (t) => {
    const keyFile = path.join(dir, 'node.key');
    fs.writeFileSync(keyFile, 'a'.repeat(64) + '\n' + 'b'.repeat(64) + '\n', { mode: 0o600 });
    const config = path.join(dir, 'config.yaml');
    fs.writeFileSync(config, `p2p:\n  key_file: ${keyFile}\nstorage:\n  data_dir: ${dataDir}\n`, { mode: 0o644 });
    const out = path.join(dir, 'out', 'with-key.tar.zst');
    const r = spawnSync(process.execPath, [BIN, '--config', config, 'backup', 'create', '--hot', '--include-key', '--include-config', '--level', '12', '--output', out, '--json'], { encoding: 'utf8' });
    t.equal(r.status, 0, r.stderr);
    t.equal(JSON.parse(r.stdout).kind, 'full', 'no node runs: a direct checkpoint, labelled full (test/backup-hot-label.test.ts)');
    execFileSync('zstd', ['-t', '-q', out]);
    const listing = execFileSync('tar', ['-I', 'zstd', '-tvf', out], { encoding: 'utf8' });
    t.match(listing, /^-rw------- .* keys\/node\.key$/m);
    t.match(listing, /^-rw------- .* config\/config\.yaml$/m);
    t.match(listing, /^drwx------ .* keys\/$/m);
    const names = tarNames(out);
    t.equal(names[names.length - 1], 'MANIFEST.json');
    const x = path.join(dir, 'x-key');
    extract(out, x);
    t.equal(fs.readFileSync(path.join(x, 'keys', 'node.key'), 'utf8'), fs.readFileSync(keyFile, 'utf8'));
    t.equal(fs.readFileSync(path.join(x, 'config', 'config.yaml'), 'utf8'), fs.readFileSync(config, 'utf8'));
    t.equal(fs.statSync(path.join(x, 'keys', 'node.key')).mode & 0o777, 0o600);
    const m = JSON.parse(fs.readFileSync(path.join(x, 'MANIFEST.json'), 'utf8')) as Manifest;
    t.ok(m.files.some((f) => f.path === 'keys/node.key' && f.mode === 0o600));
    t.match(fs.readFileSync(path.join(x, 'GUTS-INDEX'), 'utf8'), /^\d+ 0600 keys\/node\.key$/m);
    // without --include-key the key stays out
    const plain = path.join(dir, 'out', 'no-key.tar');
    t.equal(spawnSync(process.execPath, [BIN, '--config', config, 'backup', 'create', '--output', plain]).status, 0);
    t.notOk(tarNames(plain).some((n) => n.startsWith('keys')), 'no key without --include-key');
  });

  await t.test('bad output names and directories are clear errors', async (t) => {
    const bad = cli(dataDir, ['backup', 'create', '--output', path.join(dir, 'out', 'guts.zip')]);
    t.equal(bad.status, 2);
    t.match(bad.stderr, /GUTS_INVALID_ARGUMENT: .*\.tar\.zst/);
    const missing = path.join(dir, 'nope', 'sub');
    const r = cli(dataDir, ['backup', 'create', '--output', path.join(missing, 'guts.tar.zst')]);
    t.equal(r.status, 2);
    t.match(r.stderr, /^guts-node: GUTS_NOT_FOUND: output directory .*nope\/sub/);
    t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    t.same(checkpointsLeft(dataDir), []);
  });

  await t.test('unwritable output dir', async (t) => {
    const ro = path.join(dir, 'readonly');
    fs.mkdirSync(ro, { mode: 0o555 });
    fs.chmodSync(ro, 0o555);
    let r: Run;
    if (process.getuid?.() === 0) {
      // root writes anywhere: run the CLI as nobody on a data dir nobody owns
      const nobodyData = path.join(dir, 'nobody-data');
      fs.cpSync(dataDir, nobodyData, { recursive: true });
      execFileSync('chown', ['-R', '65534:65534', nobodyData]);
      const s = spawnSync(process.execPath, [BIN, '--data-dir', nobodyData, 'backup', 'create', '--output', path.join(ro, 'guts.tar.zst')], {
        encoding: 'utf8',
        uid: 65534,
        gid: 65534,
        env: { ...process.env, GUTS_CONFIG: '/dev/null' },
      });
      r = { status: s.status, stdout: s.stdout, stderr: s.stderr };
      t.same(checkpointsLeft(nobodyData), []);
    } else {
      r = cli(dataDir, ['backup', 'create', '--output', path.join(ro, 'guts.tar.zst')]);
    }
    t.equal(r.status, 2, r.stderr);
    t.match(r.stderr, new RegExp(`^guts-node: GUTS_PERMISSION: output directory ${ro} is not writable`));
    t.same(fs.readdirSync(ro), []);
  });

  await t.test('disk full: GUTS_NO_SPACE and nothing left', async (t) => {
    const mnt = path.join(dir, 'small');
    fs.mkdirSync(mnt);
    const probe = spawnSync('unshare', ['-m', 'sh', '-c', `mount -t tmpfs -o size=1m tmpfs ${mnt}`]);
    if (probe.status !== 0) {
      t.skip('needs unshare -m and tmpfs mounts');
      return;
    }
    const script = `mount -t tmpfs -o size=2m tmpfs ${mnt} && GUTS_CONFIG=/dev/null "${process.execPath}" ${BIN} --data-dir ${dataDir} backup create --output ${mnt}/guts.tar; rc=$?; echo "left:$(ls -A ${mnt})"; exit $rc`;
    const r = spawnSync('unshare', ['-m', 'sh', '-c', script], { encoding: 'utf8' });
    t.equal(r.status, 2, r.stderr);
    t.match(r.stderr, /GUTS_NO_SPACE: .*guts\.tar\.partial/);
    t.equal(r.stdout.trim(), 'left:', 'no partial left on the full fs');
    t.same(checkpointsLeft(dataDir), []);
  });

  await t.test('a filesystem without O_DIRECT (ramfs): buffered writes', async (t) => {
    const mnt = path.join(dir, 'ram');
    fs.mkdirSync(mnt);
    const script = `mount -t ramfs ramfs ${mnt} && GUTS_CONFIG=/dev/null "${process.execPath}" ${BIN} --data-dir ${dataDir} backup create --output ${mnt}/guts.tar.zst && zstd -t -q ${mnt}/guts.tar.zst && cd ${mnt} && sha256sum -c guts.tar.zst.sha256`;
    const r = spawnSync('unshare', ['-m', 'sh', '-c', script], { encoding: 'utf8' });
    if (r.status !== 0 && /mount|unshare/.test(r.stderr)) {
      t.skip('needs unshare -m and ramfs mounts');
      return;
    }
    t.equal(r.status, 0, r.stderr);
    t.match(r.stdout, /guts\.tar\.zst: OK/);
  });
});

function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  return new Promise((resolve) => {
    const tick = () => {
      if (cond()) resolve(true);
      else if (Date.now() > end) resolve(false);
      else setTimeout(tick, 5);
    };
    tick();
  });
}

function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
}

t.test('interrupted and killed runs leave nothing behind', async (t) => {
  const dir = t.testdir({ out: {} });
  const dataDir = path.join(dir, 'data');
  // compressible text at level 19 on one thread: slow enough to catch mid-write and stop
  await seed(dataDir, path.join(dir, 'git'), 12, true);
  const out = path.join(dir, 'out', 'slow.tar.zst');
  const partial = `${out}.partial`;
  const slow = () =>
    spawn(process.execPath, [BIN, '--data-dir', dataDir, 'backup', 'create', '--output', out, '--level', '19', '--threads', '1'], {
      env: { ...process.env, GUTS_CONFIG: '/dev/null' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });

  await t.test('SIGINT: exit 130, no partial, no checkpoint', async (t) => {
    const child = slow();
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    t.ok(await waitFor(() => fs.existsSync(partial), 20000), 'partial appears');
    // freeze it mid-write so the test does not race the archive's completion
    child.kill('SIGSTOP');
    child.kill('SIGINT');
    child.kill('SIGCONT');
    const { code } = await exited(child);
    t.equal(code, 130, stderr);
    t.match(stderr, /GUTS_CANCELLED/);
    t.notOk(fs.existsSync(partial));
    t.notOk(fs.existsSync(out));
    t.same(checkpointsLeft(dataDir), []);
  });

  await t.test('kill -9: the next run cleans up; a live writer is GUTS_LOCKED', async (t) => {
    const child = slow();
    const done = exited(child);
    t.ok(await waitFor(() => fs.existsSync(partial), 20000), 'partial is being written');
    await new Promise((r) => setTimeout(r, 20)); // past its open() + flock()
    child.kill('SIGSTOP'); // alive (its lock held) but not finishing while we look
    // a second writer of the same file is refused while the first one lives
    const second = cli(dataDir, ['backup', 'create', '--output', out]);
    t.equal(second.status, 3, second.stderr);
    t.match(second.stderr, /GUTS_LOCKED: another backup is writing .*slow\.tar\.zst/);
    child.kill('SIGKILL');
    t.equal((await done).signal, 'SIGKILL');
    t.notOk(fs.existsSync(out), 'no archive after kill -9');
    t.ok(fs.existsSync(partial), 'the killed run left its partial');
    t.equal(checkpointsLeft(dataDir).length, 1, 'and its checkpoint');
    const next = cli(dataDir, ['backup', 'create', '--output', out, '--json']);
    t.equal(next.status, 0, next.stderr);
    t.notOk(fs.existsSync(partial), 'stale partial removed');
    t.same(checkpointsLeft(dataDir), [], 'leaked checkpoint removed');
    execFileSync('zstd', ['-t', '-q', out]);
    t.match(execFileSync('sha256sum', ['-c', 'slow.tar.zst.sha256'], { cwd: path.dirname(out), encoding: 'utf8' }), /: OK/);
  });
});

t.test('a store held by another process: exit 3, GUTS_LOCKED', async (t) => {
  const dir = t.testdir({ out: {} });
  const dataDir = path.join(dir, 'data');
  await seed(dataDir, path.join(dir, 'git'), 0.2);
  const holder = spawn(
    process.execPath,
    ['-e', `require(${JSON.stringify(path.join(ROOT, 'dist', 'src', 'store.js'))}).GutsStore.open(${JSON.stringify(dataDir)}).then((s) => { globalThis.heldStore = s; console.log('ready'); setInterval(() => {}, 1000); })`],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve) => holder.stdout!.once('data', () => resolve()));
  try {
    const out = path.join(dir, 'out', 'locked.tar.zst');
    const r = cli(dataDir, ['backup', 'create', '--output', out]);
    t.equal(r.status, 3, r.stderr);
    t.match(r.stderr, new RegExp(`GUTS_LOCKED: store .* is locked by process ${holder.pid}`));
    t.notOk(fs.existsSync(out));
    t.notOk(fs.existsSync(`${out}.partial`));
    t.same(checkpointsLeft(dataDir), []);
  } finally {
    holder.kill('SIGKILL');
    await exited(holder);
  }
});

t.test('native writer: pax headers for long paths, in-memory files, invalid input', async (t) => {
  const dir = t.testdir({ src: { 'a.bin': 'x'.repeat(1000) } });
  const longDir = path.join(dir, 'src', 'd'.repeat(120));
  fs.mkdirSync(longDir);
  const longFile = path.join(longDir, `${'f'.repeat(150)}.sst`);
  fs.writeFileSync(longFile, crypto.randomBytes(70_000));
  const rel = `db/${'d'.repeat(120)}/${'f'.repeat(150)}.sst`;
  const out = path.join(dir, 'long.tar.zst');
  const task = native.createArchive({
    output: out,
    format: 'tar.zst',
    level: 3,
    threads: 2,
    frameSize: 64 * 1024,
    entries: [
      { path: 'db', source: path.join(dir, 'src'), type: 'dir', mode: 0o700 },
      { path: 'db/a.bin', source: path.join(dir, 'src', 'a.bin'), type: 'file' },
      { path: `db/${'d'.repeat(120)}`, source: longDir, type: 'dir' },
      { path: rel, source: longFile, type: 'file' },
    ],
    extraFiles: [{ path: 'notes/readme.txt', data: Buffer.from('hello\n') }],
    manifestBase: '{"format":"guts-backup"}',
  });
  const r = await task.promise;
  t.equal(r.files.length, 3);
  t.ok(r.frames >= 2, 'several independent frames');
  t.same(task.progress(), { done: 71_006, total: 71_006, files: 3 });
  const names = tarNames(out);
  t.same(names, ['GUTS-INDEX', 'db/', 'db/a.bin', `db/${'d'.repeat(120)}/`, rel, 'notes/readme.txt', 'MANIFEST.json']);
  const x = path.join(dir, 'x');
  extract(out, x);
  t.ok(fs.readFileSync(path.join(x, rel)).equals(fs.readFileSync(longFile)));
  t.equal(fs.readFileSync(path.join(x, 'notes', 'readme.txt'), 'utf8'), 'hello\n');
  const m = JSON.parse(fs.readFileSync(path.join(x, 'MANIFEST.json'), 'utf8')) as Manifest;
  t.equal(m.format, 'guts-backup');
  t.equal(m.total_bytes, 71_006);
  t.equal(m.files[1].xxh3, XXHash128.hash(fs.readFileSync(longFile)).toString('hex'));
  t.equal(sha256(out), r.sha256);

  const bad = (entries: ArchiveEntrySpec[], code: string) =>
    t.rejects(native.createArchive({ output: path.join(dir, 'bad.tar'), format: 'tar', level: 3, threads: 1, entries, manifestBase: '{}' }).promise, { code });
  await bad([{ path: '../escape', source: longFile, type: 'file' }], 'GUTS_INVALID_ARGUMENT');
  await bad([{ path: '/abs', source: longFile, type: 'file' }], 'GUTS_INVALID_ARGUMENT');
  await bad([{ path: 'MANIFEST.json', source: longFile, type: 'file' }], 'GUTS_INVALID_ARGUMENT');
  await bad([{ path: 'db/missing', source: path.join(dir, 'missing'), type: 'file' }], 'GUTS_NOT_FOUND');
  fs.symlinkSync(longFile, path.join(dir, 'link'));
  await bad([{ path: 'db/link', source: path.join(dir, 'link'), type: 'file' }], 'GUTS_INVALID_ARGUMENT');
  t.notOk(fs.existsSync(path.join(dir, 'bad.tar.partial')));
  t.notOk(fs.existsSync(path.join(dir, 'bad.tar')));
});

t.test('the human summaries group digits as toLocaleString("en-US") does, without loading ICU', async (t) => {
  const values = [0, 7, 999, 1000, 33_869, 100_000, 999_999, 1_000_000, 12_345_678_901, Number.MAX_SAFE_INTEGER, -1234, -999];
  for (const v of values) t.equal(groupDigits(v), v.toLocaleString('en-US'), String(v));
  t.equal(groupDigits(1234.5), (1234.5).toLocaleString('en-US'), 'a fraction falls back to toLocaleString');
});
