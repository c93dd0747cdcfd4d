// A corpus of hostile archives (built with test/fixtures/archives.ts): every
// one is refused by `backup restore` with GUTS_UNSAFE_PATH or GUTS_CORRUPT,
// and nothing appears outside the staging dir: the whole test directory
// (sentinel tree included) is identical before and after, the target is never
// created, the staging dir is gone, and no absolute path named in an archive
// exists afterwards.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { verifyBackup } from '../../src/backup-verify';
import { GutsError } from '../../src/errors';
import { restoreBackup } from '../../src/restore';
import { cli } from '../fixtures/cli';
import { compress, END, indexText, noise, paxEntry, rawArchive, rawEntry, SrcFile, writeArchive, xxh3 } from '../fixtures/archives';
import { stagingLeft, treeState } from './helpers';

type Code = 'GUTS_UNSAFE_PATH' | 'GUTS_CORRUPT';

const legit: SrcFile[] = [
  { path: 'db/CURRENT', data: Buffer.from('MANIFEST-000001\n') },
  { path: 'db/000001.sst', data: noise(5000, 9) },
];
const dbDir = () => rawEntry({ name: 'db', type: '5', mode: 0o700 });
const legitEntries = () => [dbDir(), ...legit.map((f) => rawEntry({ name: f.path, data: f.data }))];
/** A file that is listed in the index and manifest, placed after `before` entries. */
const listed = (extra: SrcFile, before: Buffer[]) => rawArchive([...legit, extra], [...legitEntries(), ...before, rawEntry({ name: extra.path, data: extra.data })]).tar;
const one = (p: string) => ({ path: p, data: Buffer.from('pwned\n') });

/** name -> [tar bytes, expected code]; `abs` is an absolute path outside the test dir. */
function corpus(abs: string): Record<string, [Buffer, Code]> {
  return {
    'traversal ../x': [rawArchive(legit, [...legitEntries(), rawEntry({ name: '../sentinel/x', data: Buffer.from('x') })]).tar, 'GUTS_UNSAFE_PATH'],
    'traversal db/../../x': [rawArchive(legit, [...legitEntries(), rawEntry({ name: 'db/../../sentinel/x', data: Buffer.from('x') })]).tar, 'GUTS_UNSAFE_PATH'],
    'traversal listed in the index': [listed(one('../sentinel/listed'), []), 'GUTS_UNSAFE_PATH'],
    'traversal as a directory entry': [rawArchive(legit, [...legitEntries(), rawEntry({ name: '../sentinel/d', type: '5' })]).tar, 'GUTS_UNSAFE_PATH'],
    'dot component ./x': [rawArchive(legit, [...legitEntries(), rawEntry({ name: './db/x', data: Buffer.from('x') })]).tar, 'GUTS_UNSAFE_PATH'],
    'absolute path (ustar)': [rawArchive(legit, [...legitEntries(), rawEntry({ name: abs, data: Buffer.from('x') })]).tar, 'GUTS_UNSAFE_PATH'],
    'absolute path listed in the index': [listed(one(abs), []), 'GUTS_UNSAFE_PATH'],
    'symlink escape': [rawArchive(legit, [...legitEntries(), rawEntry({ name: 'db/link', type: '2', linkname: '../../sentinel' })]).tar, 'GUTS_UNSAFE_PATH'],
    'symlink, then a file through it': [listed(one('db/link/pwned'), [rawEntry({ name: 'db/link', type: '2', linkname: '../../sentinel' })]), 'GUTS_UNSAFE_PATH'],
    'symlink to an absolute dir': [rawArchive(legit, [...legitEntries(), rawEntry({ name: 'db/abs', type: '2', linkname: path.dirname(abs) })]).tar, 'GUTS_UNSAFE_PATH'],
    'hard link escape': [rawArchive(legit, [...legitEntries(), rawEntry({ name: 'db/hl', type: '1', linkname: '/etc/passwd' })]).tar, 'GUTS_UNSAFE_PATH'],
    'hard link to a listed file, then written through': [listed(one('db/hl'), [rawEntry({ name: 'db/hl', type: '1', linkname: 'db/CURRENT' })]), 'GUTS_UNSAFE_PATH'],
    'character device': [rawArchive(legit, [...legitEntries(), rawEntry({ name: 'db/null', type: '3', devmajor: 1, devminor: 3 })]).tar, 'GUTS_UNSAFE_PATH'],
    'block device': [rawArchive(legit, [...legitEntries(), rawEntry({ name: 'db/sda', type: '4', devmajor: 8, devminor: 0 })]).tar, 'GUTS_UNSAFE_PATH'],
    fifo: [rawArchive(legit, [...legitEntries(), rawEntry({ name: 'db/fifo', type: '6' })]).tar, 'GUTS_UNSAFE_PATH'],
    'contiguous file type': [rawArchive(legit, [...legitEntries(), rawEntry({ name: 'db/c', type: '7', data: Buffer.from('x') })]).tar, 'GUTS_UNSAFE_PATH'],
    'pax path ../x': [rawArchive(legit, [...legitEntries(), paxEntry({ path: '../sentinel/pax' }), rawEntry({ name: 'db/innocent', data: Buffer.from('x') })]).tar, 'GUTS_UNSAFE_PATH'],
    'pax path absolute': [rawArchive(legit, [...legitEntries(), paxEntry({ path: abs }), rawEntry({ name: 'db/innocent', data: Buffer.from('x') })]).tar, 'GUTS_UNSAFE_PATH'],
    'pax global path': [
      rawArchive(legit, [...legitEntries(), rawEntry({ name: 'pax_global_header', type: 'g', data: Buffer.from('27 path=../sentinel/global\n') }), rawEntry({ name: 'db/innocent', data: Buffer.from('x') })]).tar,
      'GUTS_UNSAFE_PATH',
    ],
    'pax linkpath on a symlink': [rawArchive(legit, [...legitEntries(), paxEntry({ linkpath: '/etc' }), rawEntry({ name: 'db/l', type: '2', linkname: 'x' })]).tar, 'GUTS_UNSAFE_PATH'],
    'pax size larger than the index': [paxSizeLie(), 'GUTS_CORRUPT'],
    'pax GNU.sparse keys': [rawArchive(legit, [...legitEntries(), paxEntry({ 'GNU.sparse.size': '1000000' }), rawEntry({ name: 'db/sparse', data: Buffer.from('x') })]).tar, 'GUTS_UNSAFE_PATH'],
    'GNU long name with ..': [
      rawArchive(legit, [...legitEntries(), rawEntry({ name: '././@LongLink', type: 'L', data: Buffer.from('../sentinel/' + 'l'.repeat(120) + '\0') }), rawEntry({ name: 'db/short', data: Buffer.from('x') })]).tar,
      'GUTS_UNSAFE_PATH',
    ],
    'GNU long link target': [rawArchive(legit, [...legitEntries(), rawEntry({ name: '././@LongLink', type: 'K', data: Buffer.from('/' + 'k'.repeat(150) + '\0') }), rawEntry({ name: 'db/l', type: '2' })]).tar, 'GUTS_UNSAFE_PATH'],
    'duplicate file': [rawArchive(legit, [...legitEntries(), rawEntry({ name: 'db/CURRENT', data: Buffer.from('MANIFEST-000002\n') })]).tar, 'GUTS_CORRUPT'],
    'duplicate GUTS-INDEX': [rawArchive(legit, [...legitEntries(), rawEntry({ name: 'GUTS-INDEX', data: Buffer.from(indexText(legit)) })]).tar, 'GUTS_CORRUPT'],
    'duplicate MANIFEST.json': [Buffer.concat([rawArchive(legit, legitEntries()).tar.subarray(0, -1024), rawEntry({ name: 'MANIFEST.json', data: Buffer.from('{}') }), END]), 'GUTS_CORRUPT'],
    'a directory and a file of the same name': [listed(one('db/sub'), [rawEntry({ name: 'db/sub', type: '5' })]), 'GUTS_CORRUPT'],
    'file missing from the index': [rawArchive(legit, [...legitEntries(), rawEntry({ name: 'db/extra.sst', data: noise(3000, 3) })]).tar, 'GUTS_CORRUPT'],
    'file larger than the index says (bomb)': [
      rawArchive([...legit, { path: 'db/2.sst', data: Buffer.alloc(100, 1) }], [...legitEntries(), rawEntry({ name: 'db/2.sst', data: Buffer.alloc(100_000, 1) })]).tar,
      'GUTS_CORRUPT',
    ],
    'huge size declared in the index': [
      Buffer.concat([rawEntry({ name: 'GUTS-INDEX', data: Buffer.from(indexText(legit) + '1000000000000000 644 db/huge.sst\n') }), ...legitEntries(), rawEntry({ name: 'db/huge.sst', size: 1000000000000000 }), END]),
      'GUTS_CORRUPT',
    ],
    'huge base-256 size in a tar header': [rawArchive([...legit, { path: 'db/3.sst', data: Buffer.alloc(10) }], [...legitEntries(), rawEntry({ name: 'db/3.sst', size: 2n ** 62n })]).tar, 'GUTS_CORRUPT'],
    'manifest hash that does not match': [
      rawArchive(legit, legitEntries(), { files: [], editManifest: (m) => ((m.files as Array<{ xxh3: string }>)[1].xxh3 = xxh3(Buffer.from('other'))) }).tar,
      'GUTS_CORRUPT',
    ],
  };
}

/** A pax size record that promises more bytes than GUTS-INDEX lists for the file. */
function paxSizeLie(): Buffer {
  const f = { path: 'db/000002.sst', data: Buffer.alloc(10, 1) };
  return rawArchive([...legit, f], [...legitEntries(), paxEntry({ size: '200000' }), rawEntry({ name: f.path, data: Buffer.alloc(200_000, 1), size: 10 })]).tar;
}

t.test('hostile archives are refused by restore, nothing written outside the staging dir', async (t) => {
  const dir = t.testdir({ sentinel: { 'keep.txt': 'sentinel\n', sub: { 'deep.txt': 'deep\n' } } });
  const abs = `/tmp/guts-hostile-${process.pid}/escaped`;
  const cases = corpus(abs);
  const target = path.join(dir, 'data');
  const sentinel = treeState(path.join(dir, 'sentinel'));
  let total = 0;
  let refused = 0;
  for (const [name, [tar, code]] of Object.entries(cases)) {
    for (const how of ['zstd-frames', 'gzip', 'none'] as const) {
      if (how === 'gzip' && total % 3 !== 0) continue; // gzip for a third of the cases: same reader after inflate
      const file = writeArchive(dir, `h.tar${how === 'none' ? '' : how === 'gzip' ? '.gz' : '.zst'}`, tar, how, 4096);
      const before = treeState(dir);
      total++;
      const v = await verifyBackup({ file });
      let ok = v.status === 'INVALID' && v.problems.some((p) => p.code === code);
      let why: string;
      if (how === 'none') {
        // the CLI: one line, documented exit code
        const r = cli(['backup', 'restore', file, '--target', target]);
        ok &&= r.status === (code === 'GUTS_CORRUPT' ? 1 : 2) && new RegExp(`^guts-node: ${code}: `).test(r.stderr);
        why = `exit ${r.status} ${r.stderr.trim()}`;
      } else {
        // the same restore in process (faster)
        const e = await restoreBackup({ file, target }).then(() => null, (err: GutsError) => err);
        ok &&= e?.code === code;
        why = e ? `${e.code} ${e.message}` : 'restored!';
      }
      t.ok(ok, `${name} (${how}): verify INVALID with ${code}, restore refused: ${why}`);
      t.same(treeState(dir), before, `${name} (${how}): nothing changed outside the archive (sentinel tree intact, no target, no staging)`);
      t.notOk(fs.existsSync(path.dirname(abs)), `${name} (${how}): nothing at the absolute path`);
      if (ok && !fs.existsSync(target) && stagingLeft(dir).length === 0) refused++;
      fs.rmSync(file);
    }
  }
  // a zstd bomb: a valid head, then 200 MiB of zeros in tiny frames
  const { tar } = rawArchive(legit, legitEntries());
  const bomb = Buffer.concat([compress(dir, tar, 'zstd'), ...Array.from({ length: 200 }, () => compress(dir, Buffer.alloc(1 << 20), 'zstd'))]);
  const bombFile = path.join(dir, 'bomb.tar.zst');
  fs.writeFileSync(bombFile, bomb);
  const before = treeState(dir);
  total++;
  const r = cli(['backup', 'restore', bombFile, '--target', target]);
  t.equal(r.status, 1, 'bomb refused');
  t.match(r.stderr, /GUTS_CORRUPT: .*expands beyond/);
  t.same(treeState(dir), before, 'bomb: nothing written');
  if (r.status === 1 && stagingLeft(dir).length === 0) refused++;

  t.comment(`hostile archives rejected: ${refused}/${total}`);
  t.equal(refused, total);
  t.same(treeState(path.join(dir, 'sentinel')), sentinel, 'sentinel tree as created');
  t.same(Object.keys(sentinel).sort(), ['keep.txt', 'sub', 'sub/deep.txt']);
});
