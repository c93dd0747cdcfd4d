import t from 'tap';
import * as path from 'node:path';
import * as zlib from 'node:zlib';

import { GutsStore } from '../src/store';
import { parseSize, seedData } from '../src/seed';
import { cli } from './fixtures/cli';
import { fsck, gitIn } from './fixtures/git-repo';

async function allIds(dataDir: string): Promise<string[]> {
  const s = await GutsStore.open(dataDir, { readOnly: true });
  try {
    const ids: string[] = [];
    for await (const o of s.objects(null, 1000)) ids.push(o.id);
    return ids.sort();
  } finally {
    await s.close();
  }
}

t.test('parseSize', async (t) => {
  t.equal(parseSize('64MiB'), 64 * 1024 * 1024);
  t.equal(parseSize('1GiB'), 1024 ** 3);
  t.equal(parseSize('500MB'), 500e6);
  t.equal(parseSize('1.5k'), 1500);
  t.equal(parseSize('4096'), 4096);
  t.throws(() => parseSize('12 parsecs'), { code: 'GUTS_INVALID_ARGUMENT' });
  t.throws(() => parseSize(''), { code: 'GUTS_INVALID_ARGUMENT' });
});

t.test('seed is deterministic: same seed, same counts and ids; another seed differs', async (t) => {
  const dir = t.testdir();
  const run = (name: string, seed: string) => {
    const r = cli(['--data-dir', path.join(dir, name), 'dev', 'seed', '--size', '3MiB', '--repos', '3', '--seed', seed, '--json']);
    t.equal(r.status, 0, r.stderr);
    t.match(r.stderr, `dev seed: opened data dir ${path.join(dir, name)}`);
    return JSON.parse(r.stdout);
  };
  const a = run('a', '42');
  const b = run('b', '42');
  const c = run('c', '43');
  t.same(a.counts, b.counts);
  t.equal(a.objects, a.added, 'every generated object was new');
  t.ok(a.object_bytes >= 3 * 1024 * 1024 && a.object_bytes < 4 * 1024 * 1024 + 4 * 1024 * 1024, `size near the target: ${a.object_bytes}`);
  t.ok(a.counts.blob > 0 && a.counts.tree > 0 && a.counts.commit > 3 && a.counts.tag === 3);
  t.equal(a.repositories, 3);
  const idsA = await allIds(path.join(dir, 'a'));
  t.equal(idsA.length, a.objects);
  t.same(await allIds(path.join(dir, 'b')), idsA, 'identical id lists');
  const idsC = await allIds(path.join(dir, 'c'));
  t.notSame(idsC, idsA);

  // stored counts match what was generated; consensus blocks with a finalized height
  const s = await GutsStore.open(path.join(dir, 'a'), { readOnly: true });
  t.teardown(() => s.close());
  t.same(await s.counts(), { ...a.counts, repositories: 3 });
  t.same(await s.consensusInfo(), { finalizedHeight: a.blocks - 2, blocks: a.blocks });
  t.equal(a.blocks, 100);
  const repos = await s.listRepos();
  t.same(repos.map((r) => r.name).sort(), [...a.repos].sort());
  t.equal(repos[0].meta.default_branch, 'main');
  const refs = await s.getRefs(a.repos[0]);
  t.same(refs.map((r) => r.name).sort(), ['HEAD', 'refs/heads/develop', 'refs/heads/main', 'refs/tags/v0.1.0']);
  t.same(refs.find((r) => r.name === 'HEAD'), { name: 'HEAD', symbolic: 'refs/heads/main' });

  // realistic content: compressible text and incompressible binary blobs
  let text = 0;
  let binary = 0;
  for await (const o of s.objects(a.repos[0])) {
    if (o.type !== 'blob' || o.data.length < 4096) continue;
    const ratio = zlib.deflateSync(o.data, { level: 1 }).length / o.data.length;
    if (o.data.subarray(0, 3).toString() === '// ' && ratio < 0.5) text++;
    else if (ratio > 0.99) binary++;
  }
  t.ok(text > 0, `compressible text blobs: ${text}`);
  t.ok(binary > 0, `incompressible binary blobs: ${binary}`);
});

t.test('seeded repositories export to bare repos that pass git fsck --full; verify --full is clean', async (t) => {
  const dir = t.testdir();
  const data = path.join(dir, 'data');
  const s = await GutsStore.open(data);
  const r = await seedData(s, { size: 2 << 20, repos: 2, seed: 'fsck' });
  await s.close();
  t.equal(r.repos.length, 2);
  for (const repo of r.repos) {
    const out = path.join(dir, repo.replace('/', '_') + '.git');
    const e = cli(['--data-dir', data, 'export', '--repo', repo, out]);
    t.equal(e.status, 0, e.stderr);
    const f = fsck(out);
    t.ok(f.ok, `${repo}: ${f.output}`);
    t.notMatch(f.output, /error|warning|missing|broken|dangling/);
    t.equal(gitIn(out, ['symbolic-ref', 'HEAD']).trim(), 'refs/heads/main');
    t.equal(gitIn(out, ['cat-file', '-t', 'v0.1.0']).trim(), 'tag');
    const log = gitIn(out, ['log', '--format=%an <%ae> %s', 'main']).trim().split('\n');
    t.ok(log.length > 1, 'a commit chain');
    t.match(log[log.length - 1], /^.+ <.+@example\.com> Initial commit$/);
    t.match(gitIn(out, ['ls-tree', '-r', '--name-only', 'main']), /^src\/lib\/.+\.ts$/m, 'nested trees');
  }
  const v = cli(['verify', '--data-dir', data, '--full']);
  t.equal(v.status, 0, v.stdout);
  t.match(v.stdout, /^OK: /m);
});

t.test('seed usage errors', async (t) => {
  const dir = t.testdir();
  const r = cli(['--data-dir', dir, 'dev', 'seed', '--size', 'lots']);
  t.equal(r.status, 2);
  t.match(r.stderr, /GUTS_USAGE: dev seed: .*invalid size "lots"/);
  t.equal(cli(['--data-dir', dir, 'dev', 'seed', '--repos', '0']).status, 2);
});
