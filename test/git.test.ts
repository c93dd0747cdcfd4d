import t from 'tap';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { exportGitRepo, importGitRepo, readGitObjects } from '../src/git';
import { gitObjectId, GutsStore } from '../src/store';
import { cli, holdStore } from './fixtures/cli';
import { fsck, gitIn, makeGitRepo, objectSet, refSet } from './fixtures/git-repo';

t.test('ids equal git hash-object', async (t) => {
  const dir = t.testdir();
  const s = await GutsStore.open(path.join(dir, 'data'));
  t.teardown(() => s.close());
  const bodies = [Buffer.alloc(0), Buffer.from('hello\n'), crypto.randomBytes(70_000), Buffer.from('x'.repeat(1 << 20))];
  const r = await s.putObjects(null, bodies.map((data) => ({ type: 'blob' as const, data })));
  bodies.forEach((b, i) => {
    const git = gitIn(dir, ['hash-object', '--stdin', '-t', 'blob'], b).trim();
    t.equal(r.ids[i], git, `blob of ${b.length} bytes`);
    t.equal(gitObjectId('blob', b), git);
  });
  // a commit and a tree too (hash-object validates their format)
  const tree = Buffer.concat([Buffer.from('100644 a\0'), Buffer.from(r.ids[1], 'hex')]);
  t.equal(gitObjectId('tree', tree), gitIn(dir, ['hash-object', '--stdin', '-t', 'tree'], tree).trim());
  const commit = Buffer.from(`tree ${gitObjectId('tree', tree)}\nauthor A <a@b> 1 +0000\ncommitter A <a@b> 1 +0000\n\nm\n`);
  t.equal(gitObjectId('commit', commit), gitIn(dir, ['hash-object', '--stdin', '-t', 'commit'], commit).trim());
});

t.test('the cat-file stream parser returns every object intact', async (t) => {
  const repo = makeGitRepo(path.join(t.testdir(), 'src'));
  const seen: string[] = [];
  for await (const o of readGitObjects(repo)) {
    t.equal(gitObjectId(o.type, o.data), o.id);
    seen.push(`${o.id} ${o.type} ${o.data.length}`);
  }
  t.same(seen.sort(), objectSet(repo));
});

t.test('import -> export: git fsck --full clean, same objects and refs', async (t) => {
  const dir = t.testdir();
  const repo = makeGitRepo(path.join(dir, 'src'));
  const data = path.join(dir, 'data');
  const imp = cli(['--data-dir', data, 'import', repo, '--repo', 'alice/demo']);
  t.equal(imp.status, 0, imp.stderr);
  t.match(imp.stderr, `import: opened data dir ${data}`);
  t.match(imp.stdout, /imported \d+ objects/);

  const out = path.join(dir, 'out.git');
  const exp = cli(['--data-dir', data, 'export', '--repo', 'alice/demo', out, '--json']);
  t.equal(exp.status, 0, exp.stderr);
  const ej = JSON.parse(exp.stdout);
  t.equal(ej.objects, objectSet(repo).length);

  const f = fsck(out);
  t.ok(f.ok, f.output);
  t.notMatch(f.output, /error|missing|broken|dangling/);
  t.same(objectSet(out), objectSet(repo), 'same object set');
  t.same(refSet(out), refSet(repo), 'same refs and HEAD');
  t.equal(gitIn(out, ['rev-parse', 'v1.0^{commit}']), gitIn(repo, ['rev-parse', 'v1.0^{commit}']));
  t.equal(gitIn(out, ['show', 'feature:src/feature.ts']), 'export const feature = true;\n');
  t.same(fs.readdirSync(dir).filter((n) => n.includes('partial')), [], 'no partial export left');

  // a verify of the imported store agrees
  const v = cli(['verify', '--data-dir', data, '--full', '--json']);
  t.equal(v.status, 0, v.stdout);
  const types = objectSet(repo).map((l) => l.split(' ')[1]);
  const n = (ty: string) => types.filter((x) => x === ty).length;
  t.same(JSON.parse(v.stdout).counts, { commit: n('commit'), tree: n('tree'), blob: n('blob'), tag: n('tag'), repositories: 1 });
});

t.test('counts stay exact after duplicate imports and duplicate puts', async (t) => {
  const dir = t.testdir();
  const repo = makeGitRepo(path.join(dir, 'src'));
  const objects = objectSet(repo);
  const n = (ty: string) => objects.filter((l) => l.split(' ')[1] === ty).length;
  const s = await GutsStore.open(path.join(dir, 'data'));
  t.teardown(() => s.close());
  const first = await importGitRepo(s, repo, 'alice/demo');
  t.equal(first.objects, objects.length);
  t.equal(first.added, objects.length);
  const again = await importGitRepo(s, repo, 'bob/fork');
  t.equal(again.added, 0, 'nothing new the second time');
  t.same(await s.counts(), { commit: n('commit'), tree: n('tree'), blob: n('blob'), tag: n('tag'), repositories: 2 });

  // one batch holding the same new object three times and an old one
  const body = Buffer.from('fresh blob\n');
  const old = (await s.objects('alice/demo').next()).value!;
  const r = await s.putObjects('alice/demo', [
    { type: 'blob', data: body },
    { type: 'blob', data: body },
    { type: old.type, data: old.data },
    { type: 'blob', data: body },
  ]);
  t.equal(r.added, 1);
  t.equal(new Set(r.ids).size, 2);
  t.equal((await s.counts()).blob, n('blob') + 1);

  // a big batch of distinct objects
  const many = Array.from({ length: 3000 }, (_, i) => ({ type: 'blob' as const, data: Buffer.from(`object ${i}\n`) }));
  const m = await s.putObjects(null, many);
  t.equal(m.added, 3000);
  t.equal((await s.counts()).blob, n('blob') + 1 + 3000);
  const m2 = await s.putObjects(null, many);
  t.equal(m2.added, 0);
  t.equal((await s.counts()).blob, n('blob') + 1 + 3000);
});

t.test('a second process opening the same data dir gets GUTS_LOCKED naming the dir', async (t) => {
  const dir = t.testdir();
  const data = path.join(dir, 'data');
  const repo = makeGitRepo(path.join(dir, 'src'));
  (await GutsStore.open(data)).close();
  const child = await holdStore(data);
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  const err = await GutsStore.open(data).then(
    () => null,
    (e: Error & { code?: string }) => e,
  );
  t.equal(err?.code, 'GUTS_LOCKED');
  t.match(err?.message, data, 'the message names the data dir');
  const imp = cli(['--data-dir', data, 'import', repo, '--repo', 'alice/demo']);
  t.equal(imp.status, 3);
  t.match(imp.stderr, /GUTS_LOCKED/);
  t.match(imp.stderr, data);
  const exp = cli(['--data-dir', data, 'export', '--repo', 'alice/demo', path.join(dir, 'out')]);
  t.equal(exp.status, 3);
  t.match(exp.stderr, /GUTS_LOCKED/);
});

t.test('clear errors: not a repository, bad names, unknown repo, non-empty target', async (t) => {
  const dir = t.testdir({ notgit: { 'a.txt': 'x' }, full: { 'f.txt': 'y' } });
  const data = path.join(dir, 'data');
  const r1 = cli(['--data-dir', data, 'import', path.join(dir, 'notgit'), '--repo', 'alice/demo']);
  t.equal(r1.status, 2);
  t.match(r1.stderr, /GUTS_INVALID_ARGUMENT: .*notgit is not a git repository/);
  const r2 = cli(['--data-dir', data, 'import', path.join(dir, 'notgit'), '--repo', 'no-slash']);
  t.equal(r2.status, 2);
  const repo = makeGitRepo(path.join(dir, 'src'));
  t.equal(cli(['--data-dir', data, 'import', repo, '--repo', 'alice/demo']).status, 0);
  const r3 = cli(['--data-dir', data, 'export', '--repo', 'alice/nope', path.join(dir, 'o1')]);
  t.equal(r3.status, 2);
  t.match(r3.stderr, /GUTS_NOT_FOUND/);
  const r4 = cli(['--data-dir', data, 'export', '--repo', 'alice/demo', path.join(dir, 'full')]);
  t.equal(r4.status, 2);
  t.match(r4.stderr, /GUTS_EXISTS/);
  t.equal(fs.readdirSync(path.join(dir, 'full')).length, 1, 'target untouched');

  const s = await GutsStore.open(data, { readOnly: true });
  t.teardown(() => s.close());
  await t.rejects(exportGitRepo(s, 'alice/demo', path.join(dir, 'full')), { code: 'GUTS_EXISTS' });
});
