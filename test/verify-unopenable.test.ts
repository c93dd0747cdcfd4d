// `verify --data-dir` on stores that cannot be opened (issue 11 item 7): never
// OK. Damage to a store (db/ or consensus/ present) is CORRUPT, exit 1; a
// directory that is no store at all is GUTS_NOT_FOUND, exit 2.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { cli } from './fixtures/cli';

let seeded = '';
t.before(() => {
  seeded = path.join(t.testdirName, 'seeded');
  fs.mkdirSync(t.testdirName, { recursive: true });
  const r = cli(['--data-dir', seeded, 'dev', 'seed', '--size', '2MiB', '--repos', '3']);
  if (r.status !== 0) throw new Error(r.stderr);
});

function damaged(t: Tap.Test, name: string, damage: (dir: string) => void): string {
  const dir = path.join(t.testdirName, name);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  fs.cpSync(seeded, dir, { recursive: true });
  damage(dir);
  return dir;
}

const manifest = (db: string) => path.join(db, fs.readdirSync(db).find((f) => f.startsWith('MANIFEST-'))!);

const cases: Array<[string, (dir: string) => void, RegExp]> = [
  ['db/CURRENT missing (SST files left)', (d) => fs.rmSync(path.join(d, 'db', 'CURRENT')), /db\/CURRENT is missing/],
  ['db/MANIFEST missing', (d) => fs.rmSync(manifest(path.join(d, 'db'))), /MANIFEST/],
  [
    'db/MANIFEST damaged',
    (d) => {
      const fd = fs.openSync(manifest(path.join(d, 'db')), 'r+');
      fs.writeSync(fd, Buffer.alloc(32, 0xa5), 0, 32, 16);
      fs.closeSync(fd);
    },
    /Corruption/,
  ],
  ['db/ emptied', (d) => {
    for (const f of fs.readdirSync(path.join(d, 'db'))) fs.rmSync(path.join(d, 'db', f));
  }, /db is empty/],
  ['consensus/ missing beside db/', (d) => fs.rmSync(path.join(d, 'consensus'), { recursive: true }), /consensus\/ is missing/],
  ['consensus/CURRENT missing', (d) => fs.rmSync(path.join(d, 'consensus', 'CURRENT')), /consensus\/CURRENT is missing/],
  ['db/ is a file', (d) => {
    fs.rmSync(path.join(d, 'db'), { recursive: true });
    fs.writeFileSync(path.join(d, 'db'), 'x');
  }, /db is not a directory/],
];

for (const [name, damage, why] of cases) {
  t.test(`${name}: CORRUPT, exit 1, quick and full`, async (t) => {
    const dir = damaged(t, 'store', damage);
    for (const mode of [['--full'], [], ['--full', '--json']]) {
      const r = cli(['verify', '--data-dir', dir, ...mode]);
      t.equal(r.status, 1, `exit 1 with ${mode.join(' ') || 'quick'}: ${r.stdout}${r.stderr}`);
      t.notMatch(r.stdout, /^OK/m, 'never OK');
      if (mode.includes('--json')) {
        const j = JSON.parse(r.stdout);
        t.equal(j.ok, false);
        t.ok(j.problems.some((p: string) => p.startsWith('CORRUPT store') && why.test(p)), j.problems.join('\n'));
      } else {
        t.match(r.stdout, new RegExp(`^CORRUPT store ${dir} cannot be opened: .*${why.source}`, 'm'));
      }
    }
  });
}

t.test('an instance that still opens is checked beside the damaged one', async (t) => {
  // consensus/ gone: db/ is still verified (a bad object there is reported too)
  const dir = damaged(t, 'store', (d) => fs.rmSync(path.join(d, 'consensus'), { recursive: true }));
  const r = cli(['verify', '--data-dir', dir, '--full', '--json']);
  t.equal(r.status, 1);
  const j = JSON.parse(r.stdout);
  t.ok(j.objects > 100, 'db/ objects were re-hashed');
  t.equal(j.problems.length, 1, j.problems.join('\n'));
});

t.test('not a store at all: GUTS_NOT_FOUND, exit 2', async (t) => {
  const dir = t.testdir({ 'notes.txt': 'hello', sub: { 'a.sst': 'x' } });
  for (const mode of [['--full'], []]) {
    const r = cli(['verify', '--data-dir', dir, ...mode]);
    t.equal(r.status, 2, r.stderr);
    t.match(r.stderr, /^guts-node: GUTS_NOT_FOUND: .*not a guts-node data dir/m);
    t.equal(r.stdout, '');
  }
});

t.test('consensus/ alone (a consensus-only backup) is still OK', async (t) => {
  const dir = damaged(t, 'store', (d) => fs.rmSync(path.join(d, 'db'), { recursive: true }));
  const r = cli(['verify', '--data-dir', dir, '--full']);
  t.equal(r.status, 0, r.stdout + r.stderr);
  t.match(r.stdout, /^OK: consensus only/m);
});
