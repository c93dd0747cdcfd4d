// Rotation by name (the guide's hourly `--output consensus-$(date +%H).tar.gz`):
// an existing guts-node archive is replaced once the new one is complete, its
// sidecar with it; anything else under the name needs --force. A crash at each
// step of the replacement (SIGKILL through a test hook in PartialFile::Commit)
// leaves the old pair, or one complete archive without a sidecar.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { cli } from './fixtures/cli';
import { seedStore } from './reliability/helpers';

function sha256(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** stock `sha256sum -c` in the archive's directory */
function sha256sumCheck(file: string): number | null {
  return spawnSync('sha256sum', ['-c', `${path.basename(file)}.sha256`], { cwd: path.dirname(file), encoding: 'utf8' }).status;
}

function create(dataDir: string, out: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}) {
  return cli(['--data-dir', dataDir, 'backup', 'create', '--output', out, '--json', ...extra], { env });
}

/** the SHA-256 (hex) the run reported */
function reportedSha(r: ReturnType<typeof cli>): string {
  const out = JSON.parse(r.stdout);
  return out.sha256 ?? String(out.checksum).replace(/^sha256:/, '');
}

t.test('the same name twice: both succeed, the second archive and its sidecar are left', async (t) => {
  const dir = t.testdir({ 'tar.gz': {}, 'tar.zst': {}, tar: {} });
  const dataDir = path.join(dir, 'data');
  seedStore(dataDir, '4MiB', 1);
  for (const ext of ['tar.gz', 'tar.zst', 'tar']) {
    const out = path.join(dir, ext, `consensus-13.${ext}`);
    const first = create(dataDir, out, ['--consensus-only']);
    t.equal(first.status, 0, first.stderr);
    const firstSha = reportedSha(first);
    // something new in the store, so the second archive differs from the first
    seedStore(dataDir, '1MiB', 2 + ext.length);
    const second = create(dataDir, out);
    t.equal(second.status, 0, `${ext}: the second run replaces the first: ${second.stderr}`);
    const secondSha = reportedSha(second);
    t.not(secondSha, firstSha, 'a different archive');
    t.equal(sha256(out), secondSha, `${ext}: the second archive is the one left`);
    t.equal(JSON.parse(second.stdout).replaced_existing, true, 'says it replaced one');
    t.equal(JSON.parse(first.stdout).replaced_existing, false);
    t.equal(sha256sumCheck(out), 0, `${ext}: sha256sum -c passes`);
    t.equal(fs.readFileSync(`${out}.sha256`, 'utf8'), `${secondSha}  ${path.basename(out)}\n`);
    t.same(fs.readdirSync(path.dirname(out)).sort(), [path.basename(out), `${path.basename(out)}.sha256`], 'no partial files left');
  }
});

t.test('anything that is not a guts-node archive is refused without --force', async (t) => {
  const dir = t.testdir({ out: {} });
  const dataDir = path.join(dir, 'data');
  seedStore(dataDir, '4MiB', 1);
  const good = path.join(dir, 'out', 'good.tar.zst');
  t.equal(create(dataDir, good).status, 0);

  // a plain text file, a stock tar of something else (gzip and plain), a symlink to an archive
  const plain = path.join(dir, 'out', 'notes.tar.zst');
  fs.writeFileSync(plain, 'my notes\n');
  const stockTar = path.join(dir, 'out', 'stock.tar.gz');
  t.equal(spawnSync('tar', ['-czf', stockTar, '-C', dataDir, 'db']).status, 0);
  const stockPlain = path.join(dir, 'out', 'stock.tar');
  t.equal(spawnSync('tar', ['-cf', stockPlain, '-C', dataDir, 'db']).status, 0);
  const link = path.join(dir, 'out', 'link.tar.zst');
  fs.symlinkSync(good, link);
  for (const file of [plain, stockTar, stockPlain, link]) {
    const before = fs.lstatSync(file).isSymbolicLink() ? fs.readlinkSync(file) : sha256(file);
    const r = create(dataDir, file);
    t.equal(r.status, 2, `${path.basename(file)}: exit 2`);
    t.equal(JSON.parse(r.stdout).error.code, 'GUTS_EXISTS', `${path.basename(file)}: GUTS_EXISTS`);
    t.equal(fs.lstatSync(file).isSymbolicLink() ? fs.readlinkSync(file) : sha256(file), before, 'left untouched');
    t.notOk(fs.existsSync(`${file}.sha256`), 'no sidecar written');
  }
  t.equal(sha256sumCheck(good), 0, 'the archive behind the symlink is untouched');
  const forced = create(dataDir, plain, ['--force']);
  t.equal(forced.status, 0, `--force replaces it: ${forced.stderr}`);
  t.equal(sha256sumCheck(plain), 0);
  t.equal(cli(['backup', 'verify', plain]).status, 0);
});

t.test('a crash at each step of the replacement leaves a consistent archive', async (t) => {
  const dir = t.testdir({ out: {} });
  const dataDir = path.join(dir, 'data');
  seedStore(dataDir, '4MiB', 1);
  const out = path.join(dir, 'out', 'hourly.tar.zst');
  // step 1: new sidecar written aside; 2: old sidecar removed; 3: new archive renamed in
  const expect = { 1: 'old pair', 2: 'old archive, no sidecar', 3: 'new archive, no sidecar' } as const;
  for (const step of [1, 2, 3] as const) {
    fs.rmSync(out, { force: true });
    fs.rmSync(`${out}.sha256`, { force: true });
    const first = create(dataDir, out, ['--consensus-only']);
    t.equal(first.status, 0, first.stderr);
    const oldSha = sha256(out);
    const crashed = create(dataDir, out, [], { GUTS_TEST_HOOKS: '1', GUTS_TEST_CRASH_COMMIT: String(step) });
    t.equal(crashed.signal, 'SIGKILL', `step ${step}: the run died inside the commit`);
    const hasSidecar = fs.existsSync(`${out}.sha256`);
    t.ok(fs.existsSync(out), `step ${step}: an archive is there`);
    t.equal(cli(['backup', 'verify', out]).status, 0, `step ${step}: and it is complete`);
    if (hasSidecar) t.equal(sha256sumCheck(out), 0, `step ${step}: a sidecar there matches its archive`);
    const state = hasSidecar ? (sha256(out) === oldSha ? 'old pair' : 'new pair') : sha256(out) === oldSha ? 'old archive, no sidecar' : 'new archive, no sidecar';
    t.equal(state, expect[step], `step ${step}: ${state}`);
    // the next run (the next hour) puts a full pair back and leaves nothing behind
    const next = create(dataDir, out);
    t.equal(next.status, 0, next.stderr);
    t.equal(sha256sumCheck(out), 0);
    t.same(fs.readdirSync(path.dirname(out)).sort(), ['hourly.tar.zst', 'hourly.tar.zst.sha256'], 'no partial files left');
  }
});
