// The node's HTTP object API refuses what git would refuse (issue 11 item 9):
// a real `guts-node serve`, hostile request bodies, each answered 400
// GUTS_INVALID_ARGUMENT with nothing stored; every accepted body shape
// exports to a repository `git fsck --full --strict` passes; a store that
// already holds a symbolic-ref loop fails export instead of writing it.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { readGitObjects } from '../src/git';
import { GutsStore } from '../src/store';
import { acceptedRepo, gitId, HOSTILE_OBJECTS, T, treeOf } from './fixtures/git-bodies';
import { ROOT } from './fixtures/cli';
import { fsck, gitIn, makeGitRepo } from './fixtures/git-repo';
import { cli, NodeProc, request, startNode } from './lib/node-proc';

const REPO = 'alice/app';
const WHO = 'A <a@x> 1700000000 +0000';

let node: NodeProc;
let dataDir = '';

t.before(async () => {
  dataDir = path.join(t.testdirName, 'data');
  fs.rmSync(t.testdirName, { recursive: true, force: true });
  fs.mkdirSync(t.testdirName, { recursive: true });
  node = await startNode(dataDir);
});
t.teardown(() => node?.stop());

const post = (body: string | Buffer, repo = REPO) => request(`${node.url}/api/repos/${repo}/objects`, { method: 'POST', body });
const json = (v: unknown) => JSON.stringify(v);
const b64 = (b: Buffer | string) => Buffer.from(b).toString('base64');
const obj = (type: T, data: Buffer | string) => ({ type, data: b64(data) });

async function stored(id: string): Promise<boolean> {
  const r = await request(`${node.url}/api/objects/${id}`);
  if (r.status !== 200 && r.status !== 404) throw new Error(`GET object: ${r.status}`);
  return r.status === 200;
}

async function refs(repo = REPO): Promise<unknown> {
  return (await request(`${node.url}/api/repos/${repo}/refs`)).json();
}

async function expect400(t: Tap.Test, what: string, body: string, notStored: string[] = []): Promise<void> {
  const before = await refs();
  const r = await post(body);
  t.equal(r.status, 400, `${what}: 400 (${r.body.toString().trim()})`);
  if (r.status === 400) t.equal(r.json().error.code, 'GUTS_INVALID_ARGUMENT', what);
  for (const id of notStored) t.notOk(await stored(id), `${what}: ${id} not stored`);
  t.same(await refs(), before, `${what}: refs unchanged`);
}

// A commit this repository's refs can point at.
const blob = Buffer.from('base content\n');
const tree = treeOf([['100644', 'f.txt', gitId('blob', blob)]]);
const commit = Buffer.from(`tree ${gitId('tree', tree)}\nauthor ${WHO}\ncommitter ${WHO}\n\nbase\n`);
const commitId = gitId('commit', commit);

t.test('a valid push is stored (baseline)', async (t) => {
  const r = await post(json({ objects: [obj('blob', blob), obj('tree', tree), obj('commit', commit)], refs: [{ name: 'refs/heads/main', target: commitId }, { name: 'HEAD', symbolic: 'refs/heads/main' }] }));
  t.equal(r.status, 200, r.body.toString());
  t.ok(await stored(commitId));
});

t.test('request shapes: 400, nothing stored', async (t) => {
  const hello = Buffer.from('hello, shapes\n'); // 14 bytes: its base64 ends in padding
  const id = gitId('blob', hello);
  const cases: Array<[string, string]> = [
    ['a JSON array', '[1,2]'],
    ['a JSON string', '"objects"'],
    ['null', 'null'],
    ['not JSON', '{"objects": ['],
    ['objects not an array', json({ objects: { 0: obj('blob', hello) } })],
    ['an object that is a number', json({ objects: [obj('blob', hello), 1] })],
    ['an object without data', json({ objects: [obj('blob', hello), { type: 'blob' }] })],
    ['an unknown type', json({ objects: [obj('blob', hello), { type: 'toString', data: b64('x') }] })],
    ['an inherited property as type', json({ objects: [obj('blob', hello), { type: 'constructor', data: b64('x') }] })],
    ['an unknown object field', json({ objects: [{ ...obj('blob', hello), mode: 1 }] })],
    ['an unknown top-level field', json({ objects: [obj('blob', hello)], ref: [] })],
    ['base64 without padding', json({ objects: [{ type: 'blob', data: b64(hello).replace(/=+$/, '') }] })],
    ['base64 with a newline', json({ objects: [{ type: 'blob', data: b64(hello) + '\n' }] })],
    ['base64 with junk', json({ objects: [{ type: 'blob', data: '!!' + b64(hello) }] })],
    ['base64 with spaces', json({ objects: [{ type: 'blob', data: b64(hello).replace(/(.{4})/, '$1 ') }] })],
    ['base64url', json({ objects: [{ type: 'blob', data: b64(Buffer.from([0xfb, 0xff, 0xbf])).replace(/\+/g, '-').replace(/\//g, '_') }, obj('blob', hello)] })],
    ['non-canonical final base64 bits', json({ objects: [obj('blob', hello), { type: 'blob', data: 'aGVsbG9=' }] })],
  ];
  for (const [what, body] of cases) await expect400(t, what, body, [id]);
});

t.test('every hostile object body: 400, nothing of the batch stored', async (t) => {
  const good = Buffer.from(`a valid blob beside a hostile object\n`);
  for (const h of HOSTILE_OBJECTS) {
    await expect400(t, h.name, json({ objects: [obj('blob', good), obj(h.type, h.body)] }), [gitId(h.type, h.body), gitId('blob', good)]);
  }
});

t.test('hostile refs: 400, nothing of the batch stored', async (t) => {
  const extra = Buffer.from('stored only if the refs are valid\n');
  const extraId = gitId('blob', extra);
  const cases: Array<[string, unknown[]]> = [
    ['HEAD -> HEAD', [{ name: 'HEAD', symbolic: 'HEAD' }]],
    ['a ref to itself', [{ name: 'refs/heads/x', symbolic: 'refs/heads/x' }]],
    ['a loop of two', [{ name: 'refs/heads/a', symbolic: 'refs/heads/b' }, { name: 'refs/heads/b', symbolic: 'refs/heads/a' }]],
    ['a loop through a stored ref', [{ name: 'refs/heads/main', symbolic: 'HEAD' }]],
    ['HEAD to a tag', [{ name: 'HEAD', symbolic: 'refs/tags/v1' }]],
    ['a symbolic target outside refs/', [{ name: 'refs/heads/y', symbolic: 'main' }]],
    ['a symbolic ref other than HEAD to nothing', [{ name: 'refs/heads/alias', symbolic: 'refs/heads/nothing' }]],
    ['deleting the target of a symbolic ref', [{ name: 'refs/heads/alias', symbolic: 'refs/heads/main' }, { name: 'refs/heads/main', delete: true }]],
    ['a name outside refs/', [{ name: 'main', target: commitId }]],
    ['a name with ..', [{ name: 'refs/heads/a..b', target: commitId }]],
    ['a name ending .lock', [{ name: 'refs/heads/x.lock', target: commitId }]],
    ['a name with a space', [{ name: 'refs/heads/a b', target: commitId }]],
    ['a branch on a blob', [{ name: 'refs/heads/blob', target: extraId }]],
    ['a branch on a stored tree', [{ name: 'refs/heads/tree', target: gitId('tree', tree) }]],
    ['a missing target', [{ name: 'refs/tags/gone', target: 'b'.repeat(40) }]],
    ['an upper-case target', [{ name: 'refs/tags/up', target: commitId.toUpperCase() }]],
    ['target and symbolic', [{ name: 'refs/heads/both', target: commitId, symbolic: 'refs/heads/main' }]],
    ['a ref given twice', [{ name: 'refs/heads/t', target: commitId }, { name: 'refs/heads/t', target: commitId }]],
    ['delete: false', [{ name: 'refs/heads/main', delete: false }]],
  ];
  for (const [what, r] of cases) await expect400(t, what, json({ objects: [obj('blob', extra)], refs: r }), [extraId]);
});

t.test('every accepted shape is stored and exports git fsck --full --strict clean', async (t) => {
  const repo = acceptedRepo();
  const r = await post(json({ objects: repo.objects.map((o) => obj(o.type, o.data)), refs: repo.refs }), 'bob/shapes');
  t.equal(r.status, 200, r.body.toString());
  t.equal(r.json().added, repo.objects.length);
  // a symbolic ref chain of git's full depth is legal
  const chain = [1, 2, 3, 4].map((i) => ({ name: `refs/heads/c${i}`, symbolic: i < 4 ? `refs/heads/c${i + 1}` : 'refs/heads/main' }));
  t.equal((await post(json({ refs: chain }), 'bob/shapes')).status, 200);
  // HEAD of a fresh repository may name an unborn branch
  t.equal((await post(json({ refs: [{ name: 'HEAD', symbolic: 'refs/heads/unborn' }] }), 'erin/empty')).status, 200);
  await node.stop();
  const dir = t.testdir();
  try {
    for (const name of ['bob/shapes', REPO, 'erin/empty']) {
      const out = path.join(dir, name.replace('/', '-') + '.git');
      const e = cli(['--data-dir', dataDir, 'export', '--repo', name, out]);
      t.equal(e.code, 0, e.stderr);
      const f = fsck(out);
      t.ok(f.ok, `${name}: ${f.output}`);
      t.notMatch(f.output, /error|warning/, name);
    }
    const shapes = path.join(dir, 'bob-shapes.git');
    t.equal(gitIn(shapes, ['rev-parse', 'HEAD']).trim(), repo.refs[0].target);
    t.equal(gitIn(shapes, ['cat-file', '-t', 'refs/tags/blob-tag^{}']).trim(), 'blob');
  } finally {
    node = await startNode(dataDir);
  }
});

t.test('a real repository (this one) pushes through the API object by object and exports fsck clean', async (t) => {
  const objects: Array<{ type: T; data: string }> = [];
  for await (const o of readGitObjects(ROOT)) objects.push(obj(o.type, o.data));
  for (let i = 0; i < objects.length; i += 200) {
    const r = await post(json({ objects: objects.slice(i, i + 200) }), 'guts/store');
    t.equal(r.status, 200, r.body.toString().slice(0, 300));
  }
  const head = gitIn(ROOT, ['rev-parse', 'HEAD']).trim();
  const r = await post(json({ refs: [{ name: 'refs/heads/main', target: head }, { name: 'HEAD', symbolic: 'refs/heads/main' }] }), 'guts/store');
  t.equal(r.status, 200, r.body.toString());
  await node.stop();
  try {
    const out = path.join(t.testdir(), 'store.git');
    const e = cli(['--data-dir', dataDir, 'export', '--repo', 'guts/store', out]);
    t.equal(e.code, 0, e.stderr);
    const f = fsck(out);
    t.ok(f.ok, f.output);
    t.notMatch(f.output, /error|warning/);
    t.equal(gitIn(out, ['rev-parse', 'HEAD']).trim(), head);
  } finally {
    node = await startNode(dataDir);
  }
});

t.test('a shallow clone imports and exports as a shallow repository, fsck clean', async (t) => {
  const dir = t.testdir();
  const src = makeGitRepo(path.join(dir, 'src'));
  const shallowClone = path.join(dir, 'shallow');
  gitIn(dir, ['clone', '-q', '--depth', '1', '--no-local', `file://${src}`, shallowClone]);
  const imp = cli(['--data-dir', dataDir, 'import', shallowClone, '--repo', 'ivan/shallow']);
  t.equal(imp.code, 0, imp.stderr);
  await node.stop();
  try {
    const out = path.join(dir, 'out.git');
    const e = cli(['--data-dir', dataDir, 'export', '--repo', 'ivan/shallow', out]);
    t.equal(e.code, 0, e.stderr);
    t.equal(fs.readFileSync(path.join(out, 'shallow'), 'utf8'), fs.readFileSync(path.join(shallowClone, '.git', 'shallow'), 'utf8'));
    const f = fsck(out);
    t.ok(f.ok, f.output);
    t.notMatch(f.output, /error|warning/);
  } finally {
    node = await startNode(dataDir);
  }
});

t.test('export of a repository with bad refs or broken links fails, writing nothing', async (t) => {
  // Accepted by the API (objects may arrive in any order), but not exportable as they stand.
  const b = Buffer.from('a blob\n');
  const fakeTree = treeOf([['100644', 'x', gitId('blob', b)]]);
  const lonely = Buffer.from(`tree ${gitId('tree', fakeTree)}\nauthor ${WHO}\ncommitter ${WHO}\n\nno tree\n`);
  t.equal((await post(json({ objects: [obj('commit', lonely)], refs: [{ name: 'refs/heads/main', target: gitId('commit', lonely) }] }), 'frank/missing-tree')).status, 200);
  const dirOnBlob = treeOf([['40000', 'd', gitId('blob', b)]]);
  const c2 = Buffer.from(`tree ${gitId('tree', dirOnBlob)}\nauthor ${WHO}\ncommitter ${WHO}\n\ndir on blob\n`);
  t.equal((await post(json({ objects: [obj('blob', b), obj('tree', dirOnBlob), obj('commit', c2)], refs: [{ name: 'refs/heads/main', target: gitId('commit', c2) }] }), 'grace/tree-on-blob')).status, 200);
  const lyingTag = Buffer.from(`object ${gitId('blob', b)}\ntype commit\ntag lie\ntagger ${WHO}\n\nlie\n`);
  t.equal((await post(json({ objects: [obj('blob', b), obj('tag', lyingTag)], refs: [{ name: 'refs/tags/lie', target: gitId('tag', lyingTag) }] }), 'heidi/tag-type')).status, 200);
  await node.stop();
  try {
    const s = await GutsStore.open(dataDir);
    try {
      // written below the HTTP API (as an older node would have accepted them)
      await s.setRefs('bob/shapes', [{ name: 'HEAD', symbolic: 'HEAD' }]);
      await s.putRepo('carol/loop');
      await s.setRefs('carol/loop', [
        { name: 'refs/heads/a', symbolic: 'refs/heads/b' },
        { name: 'refs/heads/b', symbolic: 'refs/heads/a' },
      ]);
      await s.putRepo('dave/blob-branch');
      const { ids } = await s.putObjects('dave/blob-branch', [{ type: 'blob', data: Buffer.from('x') }]);
      await s.setRefs('dave/blob-branch', [{ name: 'refs/heads/main', target: ids[0] }]);
    } finally {
      await s.close();
    }
    const dir = t.testdir();
    for (const [repo, why] of [
      ['bob/shapes', /HEAD/],
      ['frank/missing-tree', /names tree [0-9a-f]{40}, which is not in the repository/],
      ['grace/tree-on-blob', /names [0-9a-f]{40} as a tree, but it is a blob/],
      ['heidi/tag-type', /names [0-9a-f]{40} as a commit, but it is a blob/],
      ['carol/loop', /loops/],
      ['dave/blob-branch', /not a commit/],
    ] as const) {
      const out = path.join(dir, `${repo.replace('/', '-')}-bad.git`);
      const e = cli(['--data-dir', dataDir, 'export', '--repo', repo, out]);
      t.equal(e.code, 1, `${repo}: exit 1 (${e.stderr.trim()})`);
      t.match(e.stderr, /^guts-node: GUTS_CORRUPT: /m);
      t.match(e.stderr, why);
      t.notOk(fs.existsSync(out), `${repo}: nothing written`);
      t.same(fs.readdirSync(dir), [], 'no partial export left');
    }
  } finally {
    node = await startNode(dataDir);
  }
});
