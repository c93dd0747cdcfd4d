// Disk full during a backup and during a restore: a size-limited tmpfs in a
// private mount namespace (root only), and RLIMIT_FSIZE (prlimit). Every case
// must end with one GUTS_NO_SPACE line and exit 2 — never a signal (Node
// ignores SIGXFSZ, so the writes fail with EFBIG instead) — with no partial
// file, no archive without its sidecar, no leaked checkpoint, and for restore
// the target as it was and no staging dir.
import t, { Test } from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { BIN } from '../fixtures/cli';
import { checkpointsLeft, createArchive, FORMATS, seedStore, stagingLeft, treeState } from './helpers';

const NODE = process.execPath;
const ENV = { ...process.env, GUTS_CONFIG: '/nonexistent.yaml' };

/** Runs `script` in a private mount namespace; null when this machine cannot. */
function inNamespace(script: string): { status: number | null; stdout: string; stderr: string } | null {
  const probe = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', 'mount -t tmpfs -o size=64k tmpfs /mnt'], { encoding: 'utf8' });
  if (probe.status !== 0) return null;
  return spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script], { encoding: 'utf8', env: ENV });
}

/** "path sha256" of every file under dir, as the shell sees it (inside the namespace). */
const listing = (dir: string) => `(cd ${dir} && find . -mindepth 1 | sort | while read f; do if [ -f "$f" ]; then echo "$f $(sha256sum < "$f" | cut -c1-64)"; else echo "$f"; fi; done)`;

function section(out: string, name: string): string {
  const m = new RegExp(`^${name}<<\\n([\\s\\S]*?)^>>$`, 'm').exec(out);
  return m ? m[1] : `(no ${name} section)`;
}

function oneNoSpaceLine(t: Test, stderr: string, what: string) {
  t.match(stderr, /^guts-node: GUTS_NO_SPACE: /, `${what}: GUTS_NO_SPACE`);
  t.equal(stderr.trim().split('\n').length, 1, `${what}: one line`);
}

t.test('disk full during backup create and restore', async (t) => {
  const dir = t.testdir({ out: {} });
  const dataDir = path.join(dir, 'data');
  seedStore(dataDir, '8MiB');
  const sizes: Record<string, number> = {};
  for (const format of FORMATS) {
    const a = path.join(dir, `ref.${format}`);
    createArchive(dataDir, a);
    sizes[format] = fs.statSync(a).size;
  }
  let cases = 0;
  let clean = 0;

  await t.test('a small tmpfs as the output file system', async (t) => {
    const mnt = path.join(dir, 'small');
    fs.mkdirSync(mnt);
    for (const format of FORMATS) {
      // early, half way, and (plain tar, whose size is exact) room for the
      // archive but not its sidecar
      const limits = [1 << 20, Math.floor(sizes[format] / 2)];
      if (format === 'tar') limits.push(sizes.tar);
      for (const size of limits) {
        const out = `${mnt}/guts.${format}`;
        const r = inNamespace(
          `mount -t tmpfs -o size=${size} tmpfs ${mnt} && ${NODE} ${BIN} --data-dir ${dataDir} backup create --output ${out}; ` +
            `rc=$?; echo "LEFT<<"; ls -A ${mnt}; echo ">>"; exit $rc`,
        );
        if (!r) {
          t.skip('needs unshare -m and tmpfs mounts (root)', () => {});
          return;
        }
        cases++;
        t.equal(r.status, 2, `${format} on a ${size}-byte tmpfs: exit 2`);
        oneNoSpaceLine(t, r.stderr, `${format} on ${size} bytes`);
        t.equal(section(r.stdout, 'LEFT'), '', 'nothing left on the full file system (no partial, no archive without sidecar)');
        t.same(checkpointsLeft(dataDir), [], 'no checkpoint left');
        if (r.status === 2 && section(r.stdout, 'LEFT') === '' && checkpointsLeft(dataDir).length === 0) clean++;
      }
    }
  });

  await t.test('RLIMIT_FSIZE below the archive size', async (t) => {
    const out = path.join(dir, 'out');
    for (const format of FORMATS) {
      // early, and an unaligned limit a little below the end (O_DIRECT writes
      // cut short by the limit come back as EINVAL: the writer retries buffered)
      for (const limit of [1_000_000, sizes[format] - 3001]) {
        const file = path.join(out, `limited.${format}`);
        const r = spawnSync('prlimit', [`--fsize=${limit}`, NODE, BIN, '--data-dir', dataDir, 'backup', 'create', '--output', file], { encoding: 'utf8', env: ENV });
        cases++;
        t.equal(r.signal, null, `${format} under fsize ${limit}: no SIGXFSZ`);
        t.equal(r.status, 2, `${format} under fsize ${limit}: exit 2`);
        oneNoSpaceLine(t, r.stderr, `${format} under fsize ${limit}`);
        t.same(fs.readdirSync(out), [], 'no partial, no archive, no sidecar');
        t.same(checkpointsLeft(dataDir), [], 'no checkpoint left');
        if (r.status === 2 && fs.readdirSync(out).length === 0 && checkpointsLeft(dataDir).length === 0) clean++;
      }
    }
    // the limit lifted: the same command succeeds
    createArchive(dataDir, path.join(out, 'ok.tar.zst'));
    t.same(fs.readdirSync(out).sort(), ['ok.tar.zst', 'ok.tar.zst.sha256']);
  });

  await t.test('restore: staging on a full file system, and under RLIMIT_FSIZE', async (t) => {
    const archive = path.join(dir, 'ref.tar.zst');
    // target on a 3 MiB tmpfs holding an old data dir: the archive needs more
    const mnt = path.join(dir, 'small-restore');
    fs.mkdirSync(mnt);
    const target = `${mnt}/data`;
    const r = inNamespace(
      `mount -t tmpfs -o size=3m tmpfs ${mnt} && mkdir -p ${target}/db && head -c 100000 /dev/urandom > ${target}/db/OLD && echo keep > ${target}/db/marker && ` +
        `echo "BEFORE<<"; ${listing(mnt)}; echo ">>"; ${NODE} ${BIN} backup restore ${archive} --target ${target} --force; rc=$?; ` +
        `echo "AFTER<<"; ${listing(mnt)}; echo ">>"; exit $rc`,
    );
    if (!r) {
      t.skip('needs unshare -m and tmpfs mounts (root)', () => {});
    } else {
      cases++;
      t.equal(r.status, 2, 'exit 2');
      oneNoSpaceLine(t, r.stderr, 'restore onto a full tmpfs');
      t.not(section(r.stdout, 'BEFORE'), '', 'the target had data');
      t.equal(section(r.stdout, 'AFTER'), section(r.stdout, 'BEFORE'), 'target untouched, no staging dir left');
      if (r.status === 2 && section(r.stdout, 'AFTER') === section(r.stdout, 'BEFORE')) clean++;
    }

    // RLIMIT_FSIZE: each file's space is allocated up front and fails
    const target2 = path.join(dir, 'restore-target');
    fs.mkdirSync(path.join(target2, 'db'), { recursive: true });
    fs.writeFileSync(path.join(target2, 'db', 'OLD'), 'old data');
    const before = treeState(target2);
    const l = spawnSync('prlimit', ['--fsize=1000000', NODE, BIN, 'backup', 'restore', archive, '--target', target2, '--force'], { encoding: 'utf8', env: ENV });
    cases++;
    t.equal(l.signal, null, 'no SIGXFSZ');
    t.equal(l.status, 2, 'exit 2');
    oneNoSpaceLine(t, l.stderr, 'restore under fsize');
    t.same(treeState(target2), before, 'target untouched');
    t.same(stagingLeft(dir), [], 'staging dir removed');
    if (l.status === 2 && stagingLeft(dir).length === 0) clean++;
  });

  t.comment(`disk-full cases that failed cleanly (GUTS_NO_SPACE, exit 2, nothing left): ${clean}/${cases}`);
  t.equal(clean, cases);
});
