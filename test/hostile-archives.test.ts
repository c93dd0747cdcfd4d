// Hostile archives built in the test: every kind must be rejected by verify
// and by restore, with nothing written outside the staging dir (a sentinel
// dir next to the target stays empty, the target is never created, the
// staging dir is removed).
import t from 'tap';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { verifyBackup } from '../src/backup-verify';
import { readArchive } from '../src/archive';
import { restoreBackup } from '../src/restore';
import { cli, END, indexText, noise, paxEntry, rawArchive, rawEntry, SrcFile, writeArchive, xxh3, manifestBase, compress } from './fixtures/archives';

const legit: SrcFile[] = [
  { path: 'db/CURRENT', data: Buffer.from('MANIFEST-000001\n') },
  { path: 'db/000001.sst', data: noise(5000, 9) },
];
const legitEntries = () => [rawEntry({ name: 'db', type: '5', mode: 0o700 }), ...legit.map((f) => rawEntry({ name: f.path, data: f.data }))];

interface Case {
  name: string;
  tar: (sentinel: string) => Buffer;
  code: 'GUTS_UNSAFE_PATH' | 'GUTS_CORRUPT';
}

const cases: Case[] = [
  {
    name: 'absolute path',
    tar: (s) => rawArchive(legit, [...legitEntries(), rawEntry({ name: path.join(s, 'abs'), data: Buffer.from('x') })]).tar,
    code: 'GUTS_UNSAFE_PATH',
  },
  {
    name: '../x',
    tar: () => rawArchive(legit, [...legitEntries(), rawEntry({ name: '../sentinel/dotdot', data: Buffer.from('x') })]).tar,
    code: 'GUTS_UNSAFE_PATH',
  },
  {
    name: 'db/../../x',
    tar: () => rawArchive(legit, [...legitEntries(), rawEntry({ name: 'db/../../sentinel/dotdot2', data: Buffer.from('x') })]).tar,
    code: 'GUTS_UNSAFE_PATH',
  },
  {
    name: 'symlink entry',
    tar: () => rawArchive(legit, [...legitEntries(), rawEntry({ name: 'db/link', type: '2', linkname: '../../sentinel' })]).tar,
    code: 'GUTS_UNSAFE_PATH',
  },
  {
    name: 'symlink then a file through it (listed in the index)',
    tar: () => {
      const through: SrcFile = { path: 'db/link/pwned', data: Buffer.from('x') };
      return rawArchive([...legit, through], [...legitEntries(), rawEntry({ name: 'db/link', type: '2', linkname: '../../sentinel' }), rawEntry({ name: through.path, data: through.data })]).tar;
    },
    code: 'GUTS_UNSAFE_PATH',
  },
  {
    name: 'hard link',
    tar: () => rawArchive(legit, [...legitEntries(), rawEntry({ name: 'db/hl', type: '1', linkname: '/etc/passwd' })]).tar,
    code: 'GUTS_UNSAFE_PATH',
  },
  {
    name: 'character device',
    tar: () => rawArchive(legit, [...legitEntries(), rawEntry({ name: 'db/null', type: '3', devmajor: 1, devminor: 3 })]).tar,
    code: 'GUTS_UNSAFE_PATH',
  },
  {
    name: 'block device',
    tar: () => rawArchive(legit, [...legitEntries(), rawEntry({ name: 'db/sda', type: '4', devmajor: 8, devminor: 0 })]).tar,
    code: 'GUTS_UNSAFE_PATH',
  },
  {
    name: 'fifo (raw)',
    tar: () => rawArchive(legit, [...legitEntries(), rawEntry({ name: 'db/fifo', type: '6' })]).tar,
    code: 'GUTS_UNSAFE_PATH',
  },
  {
    name: 'pax path override to ../x',
    tar: () => rawArchive(legit, [...legitEntries(), paxEntry({ path: '../sentinel/pax' }), rawEntry({ name: 'db/innocent', data: Buffer.from('x') })]).tar,
    code: 'GUTS_UNSAFE_PATH',
  },
  {
    name: 'GNU long name with ..',
    tar: () => rawArchive(legit, [...legitEntries(), rawEntry({ name: '././@LongLink', type: 'L', data: Buffer.from('../sentinel/' + 'l'.repeat(120) + '\0') }), rawEntry({ name: 'db/short', data: Buffer.from('x') })]).tar,
    code: 'GUTS_UNSAFE_PATH',
  },
  {
    name: 'GUTS-INDEX listing an unsafe path',
    tar: () => {
      const bad: SrcFile = { path: '../sentinel/idx', data: Buffer.from('x') };
      return Buffer.concat([rawEntry({ name: 'GUTS-INDEX', data: Buffer.from(indexText([...legit, bad])) }), ...legitEntries(), END]);
    },
    code: 'GUTS_UNSAFE_PATH',
  },
  {
    name: 'duplicate path',
    tar: () => rawArchive(legit, [...legitEntries(), rawEntry({ name: 'db/CURRENT', data: Buffer.from('MANIFEST-000002\n') })]).tar,
    code: 'GUTS_CORRUPT',
  },
  {
    name: 'entry missing from the index',
    tar: () => rawArchive(legit, [...legitEntries(), rawEntry({ name: 'db/extra.sst', data: noise(3000, 3) })]).tar,
    code: 'GUTS_CORRUPT',
  },
  {
    name: 'file larger than its index size',
    tar: () => {
      const small: SrcFile = { path: 'db/000002.sst', data: Buffer.alloc(100, 1) };
      return rawArchive([...legit, small], [...legitEntries(), rawEntry({ name: small.path, data: Buffer.alloc(100_000, 1) })]).tar;
    },
    code: 'GUTS_CORRUPT',
  },
  {
    name: 'huge declared size in the index',
    tar: () => {
      const idx = indexText(legit) + `1000000000000000 644 db/huge.sst\n`;
      return Buffer.concat([rawEntry({ name: 'GUTS-INDEX', data: Buffer.from(idx) }), ...legitEntries(), rawEntry({ name: 'db/huge.sst', size: 1000000000000000 }), END]);
    },
    code: 'GUTS_CORRUPT',
  },
  {
    name: 'huge declared size in the tar header (base-256)',
    tar: () => {
      const f: SrcFile = { path: 'db/000003.sst', data: Buffer.alloc(10) };
      return rawArchive([...legit, f], [...legitEntries(), rawEntry({ name: f.path, size: 2n ** 62n })]).tar;
    },
    code: 'GUTS_CORRUPT',
  },
  {
    name: 'MANIFEST.json not last',
    tar: () => {
      const { tar } = rawArchive(legit, legitEntries());
      return Buffer.concat([tar.subarray(0, tar.length - 1024), rawEntry({ name: 'db/late', data: Buffer.from('x') }), END]);
    },
    code: 'GUTS_CORRUPT',
  },
  {
    name: 'manifest hash that does not match the data',
    tar: () =>
      rawArchive(legit, legitEntries(), {
        files: [],
        editManifest: (m) => ((m.files as Array<{ xxh3: string }>)[1].xxh3 = xxh3(Buffer.from('other'))),
      }).tar,
    code: 'GUTS_CORRUPT',
  },
];

function sentinelSetup(dir: string) {
  const sentinel = path.join(dir, 'sentinel');
  fs.mkdirSync(sentinel);
  return sentinel;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function assertNothingOutside(t: any, dir: string, sentinel: string, target: string) {
  t.same(fs.readdirSync(sentinel), [], 'sentinel dir untouched');
  t.notOk(fs.existsSync(target), 'target not created');
  t.same(
    fs.readdirSync(dir).filter((n) => n.includes('.restore-')),
    [],
    'staging dir removed',
  );
}

for (const c of cases) {
  t.test(`hostile: ${c.name}`, async (t) => {
    const dir = t.testdir();
    const sentinel = sentinelSetup(dir);
    const target = path.join(dir, 'data');
    for (const how of ['zstd-frames', 'none'] as const) {
      const file = writeArchive(dir, `h-${how}.tar${how === 'none' ? '' : '.zst'}`, c.tar(sentinel), how, 4096);
      const v = await verifyBackup({ file });
      t.equal(v.status, 'INVALID', `${how}: verify says INVALID`);
      t.ok(
        v.problems.some((p) => p.code === c.code),
        `${how}: a ${c.code} problem in ${JSON.stringify(v.problems)}`,
      );
      await t.rejects(restoreBackup({ file, target }), { code: c.code }, `${how}: restore rejects`);
      assertNothingOutside(t, dir, sentinel, target);
    }
    // verify with extraction (the --deep path) writes only under its temp dir too
    const file = writeArchive(dir, 'h-deep.tar', c.tar(sentinel), 'none');
    const tmp = fs.mkdtempSync(path.join(dir, 'x-'));
    await readArchive({ path: file, extractTo: tmp });
    t.same(fs.readdirSync(sentinel), [], 'sentinel untouched by verify-mode extraction');
    t.notOk(fs.existsSync(path.join(tmp, 'db', 'link', 'pwned')) && fs.lstatSync(path.join(tmp, 'db', 'link')).isSymbolicLink(), 'no symlink followed');
  });
}

t.test('hostile entries written by GNU tar itself: symlink, hard link, fifo, absolute name', async (t) => {
  const dir = t.testdir();
  const sentinel = sentinelSetup(dir);
  const src = path.join(dir, 'src');
  fs.mkdirSync(path.join(src, 'db'), { recursive: true });
  for (const f of legit) fs.writeFileSync(path.join(src, f.path), f.data);
  fs.writeFileSync(path.join(src, 'GUTS-INDEX'), indexText(legit));
  const m = manifestBase({ files: [] });
  m.files = legit.map((f) => ({ path: f.path, size: f.data.length, mode: 0o644, mtime: 0, xxh3: xxh3(f.data) }));
  m.total_bytes = legit.reduce((s, f) => s + f.data.length, 0);
  fs.writeFileSync(path.join(src, 'MANIFEST.json'), JSON.stringify(m));
  fs.symlinkSync('../../sentinel', path.join(src, 'db', 'link'));
  fs.linkSync(path.join(src, 'db', 'CURRENT'), path.join(src, 'db', 'CURRENT.hl'));
  execFileSync('mkfifo', [path.join(src, 'db', 'fifo')]);
  const abs = path.join(sentinel, '..', 'abs-src');
  fs.writeFileSync(abs, 'x');
  const target = path.join(dir, 'data');
  for (const [what, extra] of [
    ['symlink', ['db/link']],
    ['hard link', ['db/CURRENT.hl']],
    ['fifo', ['db/fifo']],
    ['absolute', [abs]],
  ] as const) {
    const tarFile = path.join(dir, 'gnu.tar');
    execFileSync('tar', ['--format=gnu', '-cPf', tarFile, '-C', src, '--no-recursion', 'GUTS-INDEX', 'db', 'db/CURRENT', 'db/000001.sst', ...extra, 'MANIFEST.json']);
    const file = writeArchive(dir, 'gnu.tar.zst', fs.readFileSync(tarFile), 'zstd');
    const v = await verifyBackup({ file });
    t.match(v.problems, [{ code: 'GUTS_UNSAFE_PATH' }], what);
    await t.rejects(restoreBackup({ file, target }), { code: 'GUTS_UNSAFE_PATH' }, what);
    assertNothingOutside(t, dir, sentinel, target);
  }
  // the CLI reports the same with a documented exit code and one line
  const r = await cli(['backup', 'restore', path.join(dir, 'gnu.tar.zst'), '--target', target]);
  t.equal(r.code, 2);
  t.match(r.stderr, /^guts-node: GUTS_UNSAFE_PATH: .*absolute path\n$/);
});

t.test('decompression bomb: zeros beyond what the index declares are refused', async (t) => {
  const dir = t.testdir();
  const { tar } = rawArchive(legit, legitEntries());
  const zeroFrame = compress(dir, Buffer.alloc(1 << 20), 'zstd'); // 1 MiB of zeros -> a few bytes
  const bomb = Buffer.concat([compress(dir, tar, 'zstd'), ...Array.from({ length: 400 }, () => zeroFrame)]);
  t.ok(bomb.length < 100_000, `archive is small (${bomb.length} bytes) but expands to 400 MiB`);
  const file = path.join(dir, 'bomb.tar.zst');
  fs.writeFileSync(file, bomb);
  const v = await verifyBackup({ file, threads: 2 });
  t.equal(v.status, 'INVALID');
  t.match(v.problems, [{ code: 'GUTS_CORRUPT', message: /expands beyond the sizes GUTS-INDEX declares/ }]);
  const target = path.join(dir, 'data');
  await t.rejects(restoreBackup({ file, target }), { code: 'GUTS_CORRUPT' });
  t.notOk(fs.existsSync(target));

  // the same stream as one frame of unknown size (streaming decoder)
  fs.writeFileSync(path.join(dir, 'head.tar'), tar);
  execFileSync('sh', ['-c', `(cat head.tar; head -c 209715200 /dev/zero) | zstd -q -c -3 > bomb.tar.zst`], { cwd: dir });
  const v2 = await verifyBackup({ file });
  t.match(v2.problems, [{ code: 'GUTS_CORRUPT', message: /expands beyond/ }]);
});

t.test('fuzz: random damage never crashes or hangs, and what passes has the original file data', async (t) => {
  const dir = t.testdir();
  const files = legit.concat([{ path: 'consensus/000002.sst', data: noise(30000, 5) }]);
  let seed = 42;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const expected = new Map(files.map((f) => [f.path, xxh3(f.data)]));
  for (const how of ['zstd-frames', 'zstd-stream', 'gzip-members', 'none'] as const) {
    const { tar } = rawArchive(files, [rawEntry({ name: 'db', type: '5' }), rawEntry({ name: 'consensus', type: '5' }), ...files.map((f) => rawEntry({ name: f.path, data: f.data }))]);
    const orig = fs.readFileSync(writeArchive(dir, `f-${how}`, tar, how, 8192));
    for (let i = 0; i < 40; i++) {
      let b = Buffer.from(orig);
      const kind = rnd(3);
      if (kind === 0) for (let k = 1 + rnd(4); k > 0; k--) b[rnd(b.length)] ^= 1 << rnd(8);
      else if (kind === 1) b = b.subarray(0, rnd(b.length));
      else {
        const at = rnd(b.length);
        b = Buffer.concat([b.subarray(0, at), noise(1 + rnd(700), i), b.subarray(at)]);
      }
      const file = path.join(dir, 'm');
      fs.writeFileSync(file, b);
      const v = await verifyBackup({ file, threads: 2 });
      if (v.status === 'VALID') {
        const r = await readArchive({ path: file });
        for (const e of r.entries.filter((x) => x.type === 'file')) t.equal(e.xxh3, expected.get(e.path), `${how} #${i}: accepted data is the original`);
      }
      const target = path.join(dir, 'data');
      await restoreBackup({ file, target }).then(
        () => fs.rmSync(target, { recursive: true }),
        (e) => t.match((e as { code: string }).code, /^GUTS_(CORRUPT|UNSAFE_PATH)$/, `${how} #${i}: ${(e as Error).message}`),
      );
    }
  }
  t.same(
    fs.readdirSync(dir).filter((n) => n.includes('.restore-')),
    [],
  );
});
