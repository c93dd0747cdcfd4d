import './fixtures/enable-test-hooks';

import t from 'tap';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { native } from '../src/native';
import { GitObject, GutsStore } from '../src/store';
import { formatCount, verifyDataDir } from '../src/verify';
import { cli, holdStore } from './fixtures/cli';

// A small store: two repositories sharing some blobs, commits, a tag, refs.
async function makeStore(dir: string): Promise<{ ids: string[] }> {
  const s = await GutsStore.open(dir);
  try {
    const blobs: GitObject[] = [];
    // incompressible bodies so the objects CF spans many data blocks
    for (let i = 0; i < 300; i++) blobs.push({ type: 'blob', data: crypto.randomBytes(1000 + i * 7) });
    await s.putRepo('alice/app');
    await s.putRepo('bob/lib');
    const a = await s.putObjects('alice/app', blobs.slice(0, 200));
    const b = await s.putObjects('bob/lib', blobs.slice(150));
    const tree = Buffer.concat([Buffer.from('100644 a.bin\0'), Buffer.from(a.ids[0], 'hex')]);
    const tr = await s.putObjects('alice/app', [{ type: 'tree', data: tree }]);
    const commit = Buffer.from(
      `tree ${tr.ids[0]}\nauthor A <a@x> 1700000000 +0000\ncommitter A <a@x> 1700000000 +0000\n\ninitial\n`,
    );
    const c = await s.putObjects('alice/app', [{ type: 'commit', data: commit }]);
    const tag = Buffer.from(`object ${c.ids[0]}\ntype commit\ntag v1\ntagger A <a@x> 1700000000 +0000\n\nv1\n`);
    const tg = await s.putObjects('alice/app', [{ type: 'tag', data: tag }]);
    await s.setRefs('alice/app', [
      { name: 'refs/heads/main', target: c.ids[0] },
      { name: 'refs/tags/v1', target: tg.ids[0] },
      { name: 'HEAD', symbolic: 'refs/heads/main' },
    ]);
    await s.setRefs('bob/lib', [{ name: 'HEAD', symbolic: 'refs/heads/main' }]); // unborn: legal
    await s.putBlocks([1, 2, 3].map((h) => ({ height: h, data: Buffer.from(`block ${h}`) })), 2);
    await s.flush();
    return { ids: [...a.ids, ...b.ids, ...tr.ids, ...c.ids, ...tg.ids] };
  } finally {
    await s.close();
  }
}

async function withRawStore(dir: string, fn: (s: GutsStore) => Promise<void>): Promise<void> {
  const s = await GutsStore.open(dir);
  try {
    await fn(s);
    await s.flush();
  } finally {
    await s.close();
  }
}

t.test('debugPutRaw exists only with GUTS_TEST_HOOKS=1', async (t) => {
  t.type(native.debugPutRaw, 'function');
  t.type(native.debugDecodeObjects, 'function');
});

t.test('clean store: quick and full verify pass with exact counts', async (t) => {
  const dir = t.testdir();
  await makeStore(dir);
  const quick = await verifyDataDir(dir, { full: false });
  t.same(quick.problems, []);
  t.ok(quick.ok);
  t.ok(quick.sstFiles > 0, 'SST files were checksummed');
  const expected = { commit: 1, tree: 1, blob: 300, tag: 1, repositories: 2 };
  t.same(quick.counts, expected, 'stored counts');
  for (const threads of [1, 2, 4]) {
    const full = await verifyDataDir(dir, { full: true, threads });
    t.same(full.problems, [], `no problems with ${threads} threads`);
    t.same(full.counts, expected, `recounted with ${threads} threads`);
    t.equal(full.objects, 303);
    t.equal(full.refs, 4);
  }
  const r = cli(['verify', '--data-dir', dir, '--full']);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^OK: 303 objects \(300 blobs, 1 trees, 1 commits, 1 tags\), 2 repositories, .* checked in [\d.]+ s$/m);
  const j = cli(['verify', '--data-dir', dir, '--full', '--json', '--threads', '2']);
  t.equal(j.status, 0);
  const parsed = JSON.parse(j.stdout);
  t.equal(parsed.ok, true);
  t.same(parsed.counts, expected);
  // the global --data-dir before the subcommand works the same
  t.equal(cli(['--data-dir', dir, 'verify']).status, 0);
});

t.test('corrupt object value: CORRUPT naming the object and its repositories', async (t) => {
  const dir = t.testdir();
  const { ids } = await makeStore(dir);
  const victim = ids[170]; // in both repositories
  await withRawStore(dir, async (s) => {
    await native.debugPutRaw!(s.native, 'objects', Buffer.from(victim, 'hex'), Buffer.concat([Buffer.from([3]), Buffer.from('not the original body')]));
  });
  const r = await verifyDataDir(dir, { full: true, threads: 2, listAffected: true });
  t.notOk(r.ok);
  t.equal(r.problems.length, 1, r.problems.join('\n'));
  t.match(r.problems[0], new RegExp(`^CORRUPT object ${victim}: blob content hashes to [0-9a-f]{40} \\(repositories: alice/app, bob/lib\\)$`));
  t.same(r.affected, ['alice/app', 'bob/lib']);

  const c = cli(['verify', '--data-dir', dir, '--full', '--list-affected']);
  t.equal(c.status, 1);
  t.match(c.stdout, new RegExp(`^CORRUPT object ${victim}`, 'm'));
  t.match(c.stdout, /^Affected repositories \(2\):\n {2}alice\/app\n {2}bob\/lib$/m);
  // the quick check cannot see a well-formed block with a wrong object
  t.equal(cli(['verify', '--data-dir', dir]).status, 0);

  // debugDecodeObjects (the bench's decode floor): the same scan without the
  // SHA-1 reads and counts every object, and so cannot see the wrong body
  const ro = await GutsStore.open(dir, { readOnly: true });
  try {
    const d = await native.debugDecodeObjects!(ro.native, { threads: 2 }).promise;
    const v = await native.verifyObjects(ro.native, { threads: 2, listAffected: false }).promise;
    t.equal(d.objects, 303);
    t.match(d.counts, { commit: 1, tree: 1, blob: 300, tag: 1 });
    t.same(d.problems, [], 'nothing re-hashed');
    t.equal(v.problems.length, 1, 'verifyObjects re-hashes');
    t.equal(d.bytes, v.bytes, 'the same bytes read');
  } finally {
    await ro.close();
  }
});

t.test('invalid type byte: CORRUPT, and the recount disagrees', async (t) => {
  const dir = t.testdir();
  const { ids } = await makeStore(dir);
  await withRawStore(dir, async (s) => {
    const o = (await s.getObject(ids[0]))!;
    await native.debugPutRaw!(s.native, 'objects', Buffer.from(ids[0], 'hex'), Buffer.concat([Buffer.from([9]), o.data]));
  });
  const r = await verifyDataDir(dir, { full: true });
  t.match(r.problems, [new RegExp(`^CORRUPT object ${ids[0]}: invalid type byte 9 \\(repositories: alice/app\\)$`)]);
  t.ok(r.problems.some((p) => p === 'MISMATCH blob count: stored 300, found 299'), r.problems.join('\n'));
});

t.test('tampered counts: MISMATCH', async (t) => {
  const dir = t.testdir();
  await makeStore(dir);
  const eight = (n: number) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(n));
    return b;
  };
  await withRawStore(dir, async (s) => {
    await native.debugPutRaw!(s.native, 'meta', Buffer.from('count/tree'), eight(7));
    await native.debugPutRaw!(s.native, 'meta', Buffer.from('count/repos'), eight(5));
  });
  const r = await verifyDataDir(dir, { full: true });
  t.same(r.problems.sort(), ['MISMATCH repository count: stored 5, found 2', 'MISMATCH tree count: stored 7, found 1']);
  const c = cli(['verify', '--data-dir', dir, '--full']);
  t.equal(c.status, 1);
  t.match(c.stdout, /^MISMATCH tree count: stored 7, found 1$/m);

  // a count that no longer decodes is caught by the quick check too
  await withRawStore(dir, async (s) => {
    await native.debugPutRaw!(s.native, 'meta', Buffer.from('count/blob'), Buffer.from('xyz'));
  });
  const q = cli(['verify', '--data-dir', dir]);
  t.equal(q.status, 1);
  t.match(q.stdout, /^CORRUPT meta count\/blob: 3 bytes, not an 8-byte count$/m);
});

t.test('ref to a missing object: ERROR naming the repository', async (t) => {
  const dir = t.testdir();
  await makeStore(dir);
  const missing = crypto.randomBytes(20).toString('hex');
  await withRawStore(dir, async (s) => {
    await s.setRefs('bob/lib', [{ name: 'refs/heads/gone', target: missing }]);
  });
  const r = await verifyDataDir(dir, { full: true, listAffected: true });
  t.same(r.problems, [`ERROR ref bob/lib refs/heads/gone points to missing object ${missing} (repositories: bob/lib)`]);
  t.same(r.affected, ['bob/lib']);
  t.equal(cli(['verify', '--data-dir', dir, '--full']).status, 1);
});

t.test('a flipped byte inside an SST file is reported with exit 1', async (t) => {
  const dir = t.testdir();
  await makeStore(dir);
  const dbDir = path.join(dir, 'db');
  const ssts = fs
    .readdirSync(dbDir)
    .filter((f) => f.endsWith('.sst'))
    .map((f) => ({ f, size: fs.statSync(path.join(dbDir, f)).size }))
    .sort((a, b) => b.size - a.size);
  const target = ssts[0];
  t.ok(target.size > 100_000, 'the objects SST is large enough to hold data blocks');
  const fd = fs.openSync(path.join(dbDir, target.f), 'r+');
  const at = Math.floor(target.size / 3);
  const b = Buffer.alloc(1);
  fs.readSync(fd, b, 0, 1, at);
  b[0] ^= 0x40;
  fs.writeSync(fd, b, 0, 1, at);
  fs.closeSync(fd);

  const q = cli(['verify', '--data-dir', dir]);
  t.equal(q.status, 1, q.stderr);
  t.match(q.stdout, new RegExp(`^CORRUPT sst db/${target.f}: Corruption: block checksum mismatch`, 'm'));
  const f = cli(['verify', '--data-dir', dir, '--full', '--json']);
  t.equal(f.status, 1);
  const j = JSON.parse(f.stdout);
  t.notOk(j.ok);
  // --full checks the objects CF's blocks in its scan: the line names the file
  const ranges = j.problems.filter((p: string) => /^CORRUPT objects key range [0-9a-f]+\.\.([0-9a-f]+|end) unreadable: Corruption/.test(p));
  t.equal(ranges.length, 1, 'one line for the bad block: ' + j.problems.join('\n'));
  t.match(ranges[0], `db/${target.f}`);
  t.notOk(j.problems.some((p: string) => p.startsWith('MISMATCH')), 'an incomplete recount is not a mismatch');
});

t.test('a store held by another process: GUTS_LOCKED, exit 3', async (t) => {
  const dir = t.testdir();
  await makeStore(dir);
  const child = await holdStore(dir);
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  await t.rejects(verifyDataDir(dir, { full: true }), { code: 'GUTS_LOCKED' });
  const r = cli(['verify', '--data-dir', dir, '--full']);
  t.equal(r.status, 3);
  t.match(r.stderr, /GUTS_LOCKED/);
  t.match(r.stderr, dir);
});

t.test('usage and missing data dir: exit 2', async (t) => {
  const dir = t.testdir();
  t.equal(cli(['verify', '--data-dir', path.join(dir, 'nope')]).status, 2);
  t.equal(cli(['verify', '--data-dir', dir]).status, 2, 'empty dir holds no store');
  t.equal(cli(['verify', '--data-dir', dir, '--threads', '0']).status, 2);
});

t.test('consensus: tampered block count is a MISMATCH; a consensus-only dir verifies alone', async (t) => {
  const dir = t.testdir();
  await makeStore(dir);
  const ok = await verifyDataDir(dir, { full: true });
  t.same(ok.consensus, { blocks: 3, finalizedHeight: 2 });
  await withRawStore(dir, async (s) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(9n);
    await native.debugPutRaw!(s.native, 'consensus', Buffer.from('count/blocks'), b);
  });
  const r = await verifyDataDir(dir, { full: true });
  t.same(r.problems, ['MISMATCH consensus block count: stored 9, found 3']);

  // a consensus-only dir (like an extracted --consensus-only backup) is checked alone
  const copyConsensus = (name: string) => {
    const only = path.join(dir, name);
    fs.mkdirSync(only);
    fs.cpSync(path.join(dir, 'consensus'), path.join(only, 'consensus'), { recursive: true });
    return only;
  };
  const bad = cli(['verify', '--data-dir', copyConsensus('only-bad'), '--full']);
  t.equal(bad.status, 1);
  t.match(bad.stdout, /^MISMATCH consensus block count: stored 9, found 3$/m);
  await withRawStore(dir, async (s) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(3n);
    await native.debugPutRaw!(s.native, 'consensus', Buffer.from('count/blocks'), b);
  });
  const good = cli(['verify', '--data-dir', copyConsensus('only-good'), '--full']);
  t.equal(good.status, 0, good.stdout + good.stderr);
  t.match(good.stdout, /^OK: consensus only: 3 consensus blocks \(finalized 2\), \d+ SST files/m);
});

t.test('formatCount groups digits like en-US without Intl', async (t) => {
  for (const n of [0, 7, 999, 1000, 12345, 999999, 1000000, 1234567890, -4321, Number.MAX_SAFE_INTEGER, 1234.5]) {
    t.equal(formatCount(n), n.toLocaleString('en-US'), String(n));
  }
});
