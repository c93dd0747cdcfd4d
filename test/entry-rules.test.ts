// Issue 11 item 6: verify and restore run the same entry rules (native
// archive_reader.cc), so VALID means restore succeeds on a target with room.
// A table of archives that extraction cannot create (deep trees, a file and
// entries beneath it, names no file system takes, too many directories) goes
// through both: verify-mode reading and fail-fast extraction agree on every
// one, with the layout check off (the rules alone) and on (the CLI path).
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { readArchive } from '../src/archive';
import { verifyBackup } from '../src/backup-verify';
import { GutsError } from '../src/errors';
import { restoreBackup } from '../src/restore';
import { END, paxEntry, rawArchive, rawEntry, SrcFile, writeArchive } from './fixtures/archives';

const legit: SrcFile[] = [
  { path: 'db/CURRENT', data: Buffer.from('MANIFEST-000001\n') },
  { path: 'db/MANIFEST-000001', data: Buffer.from('m') },
];
const dirEntry = (name: string) => rawEntry({ name, type: '5', mode: 0o700 });
const fileEntry = (f: SrcFile) => (Buffer.byteLength(f.path) > 100 ? Buffer.concat([paxEntry({ path: f.path }), rawEntry({ name: 'long', data: f.data })]) : rawEntry({ name: f.path, data: f.data }));
const f = (p: string): SrcFile => ({ path: p, data: Buffer.from(`${p}\n`) });
/** GUTS-INDEX and manifest list `files`; the tar holds `dirs` then the files, in order. */
function archive(files: SrcFile[], dirs: string[] = []): Buffer {
  return rawArchive([...legit, ...files], [dirEntry('db'), ...legit.map(fileEntry), ...dirs.map(dirEntry), ...files.map(fileEntry)]).tar;
}
const deep = (n: number) => Array.from({ length: n }, (_, i) => `d${i}`).join('/');

/** name -> [tar, extraction can create it]. */
const cases: Record<string, [Buffer, boolean]> = {
  'nested dirs within the limits': [archive([f(`${deep(31)}/x`)]), true],
  'a 255-byte name': [archive([f(`db/${'n'.repeat(255)}`)]), true],
  'more than 32 path components': [archive([f(`${deep(40)}/x`)]), false],
  'a 256-byte name (NAME_MAX)': [archive([f(`db/${'n'.repeat(256)}`)]), false],
  'a path over 4096 bytes': [archive([f(`${Array.from({ length: 20 }, () => 'p'.repeat(250)).join('/')}`)]), false],
  'a file, then a file beneath it (a, a/b)': [archive([f('db/a'), f('db/a/b')]), false],
  'a file beneath, then the file (a/b, a)': [archive([f('db/a/b'), f('db/a')]), false],
  'a file, then a directory entry beneath it': [rawArchive([...legit, f('db/a')], [dirEntry('db'), ...legit.map(fileEntry), fileEntry(f('db/a')), dirEntry('db/a/sub')]).tar, false],
  'a file, then a directory entry of the same name': [rawArchive([...legit, f('db/a')], [dirEntry('db'), ...legit.map(fileEntry), fileEntry(f('db/a')), dirEntry('db/a')]).tar, false],
  'a directory entry, then a file of the same name': [rawArchive([...legit, f('db/a')], [dirEntry('db'), ...legit.map(fileEntry), dirEntry('db/a'), fileEntry(f('db/a'))]).tar, false],
  'more directories than extraction creates': [
    Buffer.concat([rawArchive(legit, [dirEntry('db'), ...legit.map(fileEntry), ...Array.from({ length: 4100 }, (_, i) => dirEntry(`db/d${i}`))]).tar.subarray(0, -1024), END]),
    false,
  ],
};

t.test('the entry rules alone: verify-mode reading and extraction agree', async (t) => {
  const dir = t.testdir();
  for (const [name, [tar, creatable]] of Object.entries(cases)) {
    const file = writeArchive(dir, 'e.tar', tar, 'none');
    const verified = await readArchive({ path: file, layout: [] });
    const stage = fs.mkdtempSync(path.join(dir, 'x-'));
    const extracted = await readArchive({ path: file, layout: [], extractTo: stage, failFast: true }).then(
      () => null,
      (e: GutsError) => e,
    );
    t.equal(verified.problems.length === 0, creatable, `${name}: verify ${verified.problems.length ? JSON.stringify(verified.problems[0]) : 'finds nothing'}`);
    t.equal(extracted === null, creatable, `${name}: extraction ${extracted ? `${extracted.code} ${extracted.message}` : 'succeeds'}`);
    if (!creatable) t.match(extracted?.code, /^GUTS_(CORRUPT|UNSAFE_PATH)$/, `${name}: refused as the archive's fault, not an I/O error`);
    fs.rmSync(stage, { recursive: true, force: true });
  }
});

t.test('backup verify and backup restore agree on the same table', async (t) => {
  const dir = t.testdir();
  const target = path.join(dir, 'data');
  for (const [name, [tar]] of Object.entries(cases)) {
    const file = writeArchive(dir, 'e.tar.zst', tar, 'zstd-frames', 8192);
    const v = await verifyBackup({ file });
    const e = await restoreBackup({ file, target }).then(
      () => null,
      (err: GutsError) => err,
    );
    // none of them is the layout of a backup either: both refuse, with the same kind of code
    t.equal(v.status, 'INVALID', `${name}: verify INVALID`);
    t.ok(e, `${name}: restore refused`);
    t.ok(v.problems.some((p) => p.code === e?.code), `${name}: verify reports restore's ${e?.code} (${e?.message})`);
    t.notOk(fs.existsSync(target), `${name}: no target`);
  }
});
