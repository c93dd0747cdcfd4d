// Paths that would make a backup destroy itself or a live store (hostile review of issue 11):
// an archive inside the target it is restored over, a backup written inside the store it
// protects, --key-to into a store held open, and `keygen >>` onto an existing key.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';

import { cli, holdStore } from './fixtures/cli';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'guts-trust-paths-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

const store = path.join(dir, 'store');
t.before(() => {
  const r = cli(['dev', 'seed', '--size', '2MiB', '--data-dir', store]);
  if (r.status !== 0) throw new Error(r.stderr);
});

function code(r: { stderr: string }): string | undefined {
  return /guts-node: (GUTS_[A-Z_]+)/.exec(r.stderr)?.[1];
}

t.test('a backup is never written inside the data dir it protects', async (t) => {
  const out = path.join(store, 'db', 'in.tar.zst');
  const r = cli(['backup', 'create', '--data-dir', store, '--output', out]);
  t.equal(r.status, 2, r.stderr);
  t.equal(code(r), 'GUTS_INVALID_ARGUMENT');
  t.notOk(fs.existsSync(out), 'nothing written');
  // through a symlink to the data dir too
  fs.symlinkSync(store, path.join(dir, 'link'));
  const r2 = cli(['backup', 'create', '--data-dir', store, '--output', path.join(dir, 'link', 'x.tar')]);
  t.equal(code(r2), 'GUTS_INVALID_ARGUMENT', r2.stderr);
});

t.test('an archive inside the target is not restored over (the swap would delete it)', async (t) => {
  const target = path.join(dir, 'target');
  const outside = path.join(dir, 'b.tar.zst');
  t.equal(cli(['backup', 'create', '--data-dir', store, '--output', outside]).status, 0);
  t.equal(cli(['backup', 'restore', outside, '--target', target]).status, 0);
  const inside = path.join(target, 'db', 'kept.tar.zst');
  fs.copyFileSync(outside, inside);
  fs.copyFileSync(`${outside}.sha256`, `${inside}.sha256`);
  const before = fs.readdirSync(path.join(target, 'db')).sort();
  const r = cli(['backup', 'restore', inside, '--target', target, '--force']);
  t.equal(r.status, 2, r.stderr);
  t.equal(code(r), 'GUTS_INVALID_ARGUMENT');
  t.ok(fs.existsSync(inside), 'the archive is still there');
  t.same(fs.readdirSync(path.join(target, 'db')).sort(), before, 'target untouched');
});

t.test('--key-to into a store held open is refused before anything is written', async (t) => {
  const withKey = path.join(dir, 'k.tar');
  const keyFile = path.join(dir, 'node.key');
  fs.writeFileSync(keyFile, 'a'.repeat(64) + '\n' + 'b'.repeat(64) + '\n', { mode: 0o600 });
  const cfg = path.join(dir, 'cfg.yaml');
  fs.writeFileSync(cfg, `p2p:\n  key_file: ${keyFile}\n`);
  const made = cli(['backup', 'create', '--data-dir', store, '--output', withKey, '--include-key'], { env: { GUTS_CONFIG: cfg } });
  t.equal(made.status, 0, made.stderr);
  const live = path.join(dir, 'live');
  t.equal(cli(['backup', 'restore', withKey, '--target', live]).status, 0);
  const holder = await holdStore(live);
  try {
    const dest = path.join(live, 'db', '999999.sst');
    const r = cli(['backup', 'restore', withKey, '--target', path.join(dir, 'elsewhere'), '--key-to', dest]);
    t.equal(r.status, 3, r.stderr);
    t.equal(code(r), 'GUTS_LOCKED');
    t.notOk(fs.existsSync(dest), 'no key written into the live store');
    t.notOk(fs.existsSync(path.join(dir, 'elsewhere')), 'nothing restored');
  } finally {
    holder.kill('SIGKILL');
  }
});

t.test('keygen >> an existing key file is refused (no second identity appended)', async (t) => {
  const key = path.join(dir, 'append.key');
  const first = cli(['keygen', '--output', key]);
  t.equal(first.status, 0, first.stderr);
  const before = fs.readFileSync(key, 'utf8');
  const fd = fs.openSync(key, 'a');
  try {
    const { spawnSync } = await import('node:child_process');
    const r = spawnSync(process.execPath, [path.resolve(__dirname, '..', 'bin', 'guts-node.js'), 'keygen'], {
      encoding: 'utf8',
      stdio: ['ignore', fd, 'pipe'],
      env: { ...process.env, GUTS_CONFIG: '/dev/null' },
    });
    t.equal(r.status, 2, r.stderr);
    t.equal(code(r), 'GUTS_EXISTS');
  } finally {
    fs.closeSync(fd);
  }
  t.equal(fs.readFileSync(key, 'utf8'), before, 'the key file is unchanged');
});
