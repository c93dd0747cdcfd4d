// `verify --full --list-affected` when the damage is an unreadable block
// (issue 11 item 8): the repositories owning objects in the bad block are
// named, the rest of the objects CF is still checked, and where the
// repositories cannot be told (the membership index is unreadable) every
// repository that may be affected is listed, saying so.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { GutsStore } from '../src/store';
import { verifyDataDir, VerifyReport } from '../src/verify';
import { cli, ROOT } from './fixtures/cli';

interface Truth {
  /** object id -> repositories holding it */
  owners: Map<string, string[]>;
  repos: string[];
}

/** Ground truth read from the intact store: which repositories hold which objects. */
async function membership(dir: string): Promise<Truth> {
  const s = await GutsStore.open(dir, { readOnly: true });
  try {
    const owners = new Map<string, string[]>();
    const repos = (await s.listRepos()).map((r) => r.name).sort();
    for (const repo of repos) {
      for await (const o of s.objects(repo, 1000)) owners.set(o.id, [...(owners.get(o.id) ?? []), repo]);
    }
    return { owners, repos };
  } finally {
    await s.close();
  }
}

// Everything read after the damage runs in a fresh process: this process's
// block cache (shared by every store it opens) still holds the intact blocks.
function inChild<T>(body: string): T {
  const code = `const { GutsStore } = require(${JSON.stringify(path.join(ROOT, 'dist/src/store.js'))});
    const { verifyDataDir } = require(${JSON.stringify(path.join(ROOT, 'dist/src/verify.js'))});
    (async () => { ${body} })().then((r) => process.stdout.write(JSON.stringify(r)), (e) => { console.error(e); process.exit(2); });`;
  const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout) as T;
}

/** The ids whose point lookup fails after the damage: exactly the objects in unreadable blocks. */
function unreadableIds(dir: string, ids: string[]): string[] {
  return inChild(`const s = await GutsStore.open(${JSON.stringify(dir)}, { readOnly: true });
    const bad = [];
    for (const id of ${JSON.stringify(ids)}) {
      try { await s.getObject(id); } catch (e) { if (e.code !== 'GUTS_CORRUPT') throw e; bad.push(id); }
    }
    await s.close();
    return bad;`);
}

function verifyInChild(dir: string): VerifyReport {
  return inChild(`return verifyDataDir(${JSON.stringify(dir)}, { full: true, listAffected: true, threads: 2 });`);
}

/** Live SST files of db/ by the column family named in their properties block. */
function sstOf(dbDir: string, cf: string): string[] {
  return fs
    .readdirSync(dbDir)
    .filter((f) => f.endsWith('.sst'))
    .map((f) => path.join(dbDir, f))
    .filter((f) => {
      const b = fs.readFileSync(f);
      const at = b.lastIndexOf('column.family.id'); // the properties block ("…name" is prefix-compressed)
      return at >= 0 && b.subarray(at, at + 48).includes(Buffer.from('name' + cf));
    });
}

function flip(file: string, at: number, n = 8): void {
  const fd = fs.openSync(file, 'r+');
  const b = Buffer.alloc(n);
  fs.readSync(fd, b, 0, n, at);
  for (let i = 0; i < n; i++) b[i] ^= 0x5a;
  fs.writeSync(fd, b, 0, n, at);
  fs.closeSync(fd);
}

function seed(dir: string, size: string, repos: number): void {
  const r = cli(['--data-dir', dir, 'dev', 'seed', '--size', size, '--repos', String(repos), '--seed', '7']);
  if (r.status !== 0) throw new Error(r.stderr);
}

t.test('a bad data block in the middle of the objects SST: its owners are listed, the rest is still checked', async (t) => {
  const dir = path.join(t.testdir(), 'store');
  seed(dir, '4MiB', 8);
  const truth = await membership(dir);
  const all = [...truth.owners.keys()];
  const total = (await verifyDataDir(dir, { full: true })).objects;
  t.ok(truth.repos.length >= 8);

  const [objectsSst] = sstOf(path.join(dir, 'db'), 'objects').sort((a, b) => fs.statSync(b).size - fs.statSync(a).size);
  t.ok(objectsSst, 'found the objects SST');
  flip(objectsSst, Math.floor(fs.statSync(objectsSst).size * 0.45));

  const lost = unreadableIds(dir, all);
  t.ok(lost.length > 0 && lost.length < all.length / 4, `one block is unreadable: ${lost.length} of ${all.length} objects`);
  const owners = [...new Set(lost.flatMap((id) => truth.owners.get(id) ?? []))].sort();
  t.ok(owners.length > 0, `owners of the bad block: ${owners.join(', ')}`);

  const r = verifyInChild(dir);
  t.notOk(r.ok);
  t.notOk(r.affectedUnknown, 'the membership index was readable: the repositories are known');
  for (const repo of owners) t.ok(r.affected.includes(repo), `${repo} (owns an object of the bad block) is listed`);
  t.equal(r.objects, total - lost.length, 'every readable object was re-hashed (the scan resumed after the bad block)');
  const lines = r.problems.filter((p) => /^CORRUPT objects key range [0-9a-f]{40}\.\.([0-9a-f]{40}|end) unreadable: Corruption/.test(p));
  t.equal(lines.length, 1, r.problems.join('\n'));
  const m = /key range ([0-9a-f]{40})\.\.([0-9a-f]{40}|end)/.exec(lines[0])!;
  const inRange = (id: string) => id >= m[1] && (m[2] === 'end' || id < m[2]);
  t.same(lost.filter((id) => !inRange(id)), [], 'every unreadable object lies in the reported range');
  // the range is the block, not the whole work range: ids just outside it are readable
  t.equal(all.filter(inRange).length, lost.length, 'the reported range holds only unreadable objects');

  const c = cli(['verify', '--data-dir', dir, '--full', '--list-affected']);
  t.equal(c.status, 1);
  t.match(c.stdout, new RegExp(`^Affected repositories \\(${r.affected.length}\\):$`, 'm'));
  for (const repo of owners) t.match(c.stdout, new RegExp(`^  ${repo}$`, 'm'));
  t.notMatch(c.stdout, /Affected repositories \(0\)/);
});

t.test('the membership index unreadable: says it cannot tell and lists every repository', async (t) => {
  const dir = path.join(t.testdir(), 'store');
  seed(dir, '4MiB', 8);
  const truth = await membership(dir);
  const objectsSst = sstOf(path.join(dir, 'db'), 'objects').sort((a, b) => fs.statSync(b).size - fs.statSync(a).size)[0];
  flip(objectsSst, Math.floor(fs.statSync(objectsSst).size * 0.45));
  // membership keys "m/..." sort before the repository records "r/...": the first block holds membership only
  const [reposSst] = sstOf(path.join(dir, 'db'), 'repos');
  t.ok(reposSst, 'found the repos SST');
  flip(reposSst, 64);

  const r = verifyInChild(dir);
  t.notOk(r.ok);
  t.ok(r.affectedUnknown);
  t.same(r.affected, truth.repos, 'every repository is listed');
  t.ok(r.problems.some((p) => /^CORRUPT objects key range .*\(repositories: cannot tell, every repository may be affected\)$/.test(p)), r.problems.join('\n'));
  const c = cli(['verify', '--data-dir', dir, '--full', '--list-affected']);
  t.equal(c.status, 1);
  t.match(c.stdout, new RegExp(`^Affected repositories \\(${truth.repos.length}, cannot tell which: every repository that may be affected\\):$`, 'm'));
});

t.test('problems outside repository data never print a bare "(0)"', async (t) => {
  const dir = path.join(t.testdir(), 'store');
  seed(dir, '1MiB', 2);
  const [consensusSst] = fs.readdirSync(path.join(dir, 'consensus')).filter((f) => f.endsWith('.sst'));
  flip(path.join(dir, 'consensus', consensusSst), 64);
  const c = cli(['verify', '--data-dir', dir, '--full', '--list-affected']);
  t.equal(c.status, 1, c.stdout + c.stderr);
  t.match(c.stdout, /^Affected repositories \(0\): no repository owns the damaged objects or refs$/m);
});
