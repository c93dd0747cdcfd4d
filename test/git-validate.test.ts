// src/git-validate.ts against git itself (issue 11 item 9): every hostile
// body is refused by us and (unless marked beyond fsck) by `git fsck
// --strict`; every accepted shape passes both; every object of a real
// repository (this one) passes.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { readGitObjects } from '../src/git';
import { decodeBase64Strict, objectProblem, refNameProblem, refsProblems } from '../src/git-validate';
import { acceptedRepo, gitId, HOSTILE_OBJECTS } from './fixtures/git-bodies';
import { ROOT } from './fixtures/cli';
import { fsck, gitIn } from './fixtures/git-repo';

/** Writes objects into a fresh repository as they are (hash-object --literally). */
function scratchRepo(dir: string, objects: Array<{ type: string; body: Buffer }>): void {
  execFileSync('git', ['init', '-q', '--bare', dir]);
  for (const o of objects) {
    const id = gitIn(dir, ['hash-object', '--literally', '-t', o.type, '-w', '--stdin'], o.body).trim();
    if (id !== gitId(o.type as never, o.body)) throw new Error(`git stored ${o.type} as ${id}`);
  }
}

t.test('every hostile body is refused, and git fsck --strict flags it too', async (t) => {
  for (const [i, h] of HOSTILE_OBJECTS.entries()) {
    const problem = objectProblem(h.type, h.body);
    t.ok(problem, `refused: ${h.name}: ${problem}`);
    // one repository per object: fsck's messages about one object never blur into another's
    const dir = path.join(t.testdir(), `h${i}.git`);
    scratchRepo(dir, [h]);
    const id = gitId(h.type, h.body);
    const flagged = fsck(dir)
      .output.split('\n')
      .some((l) => l.startsWith('error') && l.includes(id));
    if (h.beyondFsck) t.notOk(flagged, `${h.name}: git fsck --strict accepts it (we are stricter on purpose)`);
    else t.ok(flagged, `${h.name}: git fsck --strict flags it too`);
  }
});

t.test('every accepted shape passes, and git fsck --full --strict agrees', async (t) => {
  const repo = acceptedRepo();
  for (const o of repo.objects) t.equal(objectProblem(o.type, o.data), null, `${o.type} ${gitId(o.type, o.data)}`);
  t.same(refsProblems(repo.refs), []);
  const dir = path.join(t.testdir(), 'accepted.git');
  scratchRepo(
    dir,
    repo.objects.map((o) => ({ type: o.type, body: o.data })),
  );
  for (const r of repo.refs) {
    if (r.symbolic) gitIn(dir, ['symbolic-ref', r.name, r.symbolic]);
    else gitIn(dir, ['update-ref', r.name, r.target!]);
  }
  const f = fsck(dir);
  t.ok(f.ok, f.output);
  t.notMatch(f.output, /error|warning/);
});

t.test('every object of a real repository passes (this repository)', async (t) => {
  let n = 0;
  const bad: string[] = [];
  const started = process.hrtime.bigint();
  for await (const o of readGitObjects(ROOT)) {
    n++;
    const p = objectProblem(o.type, o.data);
    if (p) bad.push(`${o.type} ${o.id}: ${p}`);
  }
  const s = Number(process.hrtime.bigint() - started) / 1e9;
  t.ok(n > 100, `${n} objects read in ${s.toFixed(2)} s`);
  t.same(bad, []);
});

t.test('strict base64', async (t) => {
  t.same(decodeBase64Strict('aGVsbG8='), Buffer.from('hello'));
  t.same(decodeBase64Strict(''), Buffer.alloc(0));
  for (const s of ['aGVsbG8', 'aGVsbG8=\n', ' aGVsbG8=', 'aGVs bG8=', 'aGVsbG9=', 'aGVsbG8=!!!!', 'aGVsbG8==', '-_-_', 'aGVs\tbG8=', '====', 'a===']) {
    t.equal(decodeBase64Strict(s), null, JSON.stringify(s));
  }
});

t.test('ref names and symbolic refs', async (t) => {
  for (const ok of ['refs/heads/main', 'refs/tags/v1.0', 'refs/heads/feature/x-y_z', 'refs/remotes/origin/HEAD']) t.equal(refNameProblem(ok), null, ok);
  for (const bad of ['main', 'refs/heads/a..b', 'refs/heads/x.lock', 'refs/heads/.x', 'refs//x', 'refs/heads/x/', 'refs/heads/a b', 'refs/heads/a~1', 'refs/heads/a@{1}', 'refs/heads/a.', 'refs/heads/a\\b', 'refs/heads/a\x01']) {
    t.ok(refNameProblem(bad), JSON.stringify(bad));
  }
  t.match(refsProblems([{ name: 'HEAD', symbolic: 'HEAD' }]), [/not a ref under refs/]);
  t.match(refsProblems([{ name: 'refs/heads/a', symbolic: 'refs/heads/a' }]), [/loops: refs\/heads\/a -> refs\/heads\/a/]);
  t.match(refsProblems([
    { name: 'refs/heads/a', symbolic: 'refs/heads/b' },
    { name: 'refs/heads/b', symbolic: 'refs/heads/a' },
  ]), [/loops/, /loops/]);
  t.match(refsProblems([{ name: 'HEAD', symbolic: 'refs/tags/v1' }]), [/HEAD must point to a branch/]);
  const chain: Array<{ name: string; symbolic?: string; target?: string }> = Array.from({ length: 7 }, (_, i) => ({ name: `refs/heads/c${i}`, symbolic: `refs/heads/c${i + 1}` }));
  chain.push({ name: 'refs/heads/c7', target: 'a'.repeat(40) });
  t.match(refsProblems(chain), [/chains deeper/]);
  t.same(refsProblems([{ name: 'HEAD', symbolic: 'refs/heads/unborn' }]), [], 'an unborn branch is legal');
  t.match(refsProblems([{ name: 'refs/heads/alias', symbolic: 'refs/heads/unborn' }]), [/does not exist/], 'only HEAD may dangle');
  t.ok(fs.existsSync(ROOT));
});
