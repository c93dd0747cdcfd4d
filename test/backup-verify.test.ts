import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { loadVerifyDataDir, verifyBackup } from '../src/backup-verify';
import { buildArchive, cli, sampleFiles, tarEntries, writeArchive, zstdFramesWithMap } from './fixtures/archives';

const FRAME = 64 * 1024;

t.test('a valid archive gives the guide block and exit 0 (every format)', async (t) => {
  const dir = t.testdir();
  const a = buildArchive(dir, 'guts-20250101.tar.zst', { files: sampleFiles(), objects: { commit: 5000, tree: 10000, blob: 50000, tag: 0 } });
  const r = await cli(['backup', 'verify', a.path]);
  t.equal(r.code, 0, r.stderr);
  const size = fs.statSync(a.path).size;
  t.equal(
    r.stdout,
    [
      'Backup file: guts-20250101.tar.zst',
      'Created: 2025-01-01T02:00:00Z',
      `Size: ${(size / 1000).toFixed(1)} KB`,
      `Checksum: SHA256:${a.sha256}`,
      'Objects: 50,000 blobs, 10,000 trees, 5,000 commits',
      'Repositories: 100',
      'Status: VALID',
      '',
    ].join('\n'),
  );

  // stock zstd (one frame, with and without a content size), gzip (one and many members), plain tar, pax headers
  for (const [compression, name, tarFormat] of [
    ['zstd', 'one-frame.tar.zst', 'gnu'],
    ['zstd-stream', 'stream.tar.zst', 'posix'],
    ['gzip', 'one.tar.gz', 'posix'],
    ['gzip-members', 'members.tar.gz', 'gnu'],
    ['none', 'plain.tar', 'posix'],
  ] as const) {
    const b = buildArchive(dir, name, { files: sampleFiles(), compression, tarFormat, objects: { commit: 1, tree: 2, blob: 3, tag: 4 } });
    const rep = await verifyBackup({ file: b.path, threads: 2 });
    t.equal(rep.status, 'VALID', `${name}: ${JSON.stringify(rep.problems)}`);
    t.equal(rep.checksum, `SHA256:${b.sha256}`);
    t.equal(rep.sidecar, 'ok');
    t.equal(rep.files, sampleFiles().length);
    t.equal(rep.format, name.replace(/^[^.]+\./, ''));
  }
});

t.test('tags are shown only when there are some; --json shape', async (t) => {
  const dir = t.testdir();
  const a = buildArchive(dir, 'g.tar.zst', { files: sampleFiles(), objects: { commit: 1234, tree: 2, blob: 3, tag: 7 }, repositories: 1500 });
  const text = await cli(['backup', 'verify', a.path]);
  t.match(text.stdout, /^Objects: 3 blobs, 2 trees, 1,234 commits, 7 tags$/m);
  t.match(text.stdout, /^Repositories: 1,500$/m);
  const r = await cli(['backup', 'verify', '--json', a.path]);
  t.equal(r.code, 0);
  const j = JSON.parse(r.stdout);
  t.match(j, {
    file: 'g.tar.zst',
    created: '2025-01-01T02:00:00Z',
    size_bytes: fs.statSync(a.path).size,
    checksum: `SHA256:${a.sha256}`,
    objects: { commit: 1234, tree: 2, blob: 3, tag: 7 },
    repositories: 1500,
    status: 'VALID',
    problems: [],
  });
});

t.test('a flipped byte inside a file data region names that file', async (t) => {
  const dir = t.testdir();
  const a = buildArchive(dir, 'ok.tar', { files: sampleFiles(), compression: 'none' });
  const e = tarEntries(a.tar).find((x) => x.name === 'db/000013.sst')!;
  for (const how of ['none', 'zstd-frames', 'gzip'] as const) {
    const tar = Buffer.from(a.tar);
    tar[e.dataOffset + 1000] ^= 0x20;
    const file = writeArchive(dir, `flip-${how}.tar`, tar, how, FRAME);
    const r = await cli(['backup', 'verify', file]);
    t.equal(r.code, 1, how);
    t.match(r.stdout, /^Status: INVALID$/m);
    t.match(r.stdout, /^CORRUPT db\/000013\.sst: XXH3-128 mismatch/m);
    t.notMatch(r.stdout, /000012/, 'only the damaged file is named');
  }
});

t.test('a flipped byte inside MANIFEST.json names MANIFEST.json (and the sidecar catches it too)', async (t) => {
  const dir = t.testdir();
  const a = buildArchive(dir, 'm.tar', { files: sampleFiles(), compression: 'none' });
  const e = tarEntries(a.tar).find((x) => x.name === 'MANIFEST.json')!;
  const bytes = fs.readFileSync(a.path);
  bytes[e.dataOffset] ^= 0x01; // the opening '{'
  fs.writeFileSync(a.path, bytes);
  const r = await cli(['backup', 'verify', a.path]);
  t.equal(r.code, 1);
  t.match(r.stdout, /^CORRUPT MANIFEST\.json: invalid JSON/m);
  t.match(r.stdout, /^CORRUPT m\.tar\.sha256: SHA-256 of the archive is/m);
  t.match(r.stdout, /^Created: unknown$/m);

  // a count changed inside the manifest: total_bytes no longer adds up
  const b = buildArchive(dir, 'n.tar.zst', { files: sampleFiles(), sidecar: false, editManifest: (m) => (m.total_bytes = 1) });
  const rb = await verifyBackup({ file: b.path });
  t.equal(rb.status, 'INVALID');
  t.match(rb.problems, [{ path: 'MANIFEST.json', code: 'GUTS_CORRUPT', message: /total_bytes 1 differs/ }]);
  t.equal(rb.sidecar, 'missing');
});

t.test('a flipped byte inside the zstd stream names the file of that frame and checks the rest', async (t) => {
  const dir = t.testdir();
  const a = buildArchive(dir, 'base.tar', { files: sampleFiles(), compression: 'none', sidecar: false });
  const { bytes, frames } = zstdFramesWithMap(dir, a.tar, FRAME);
  const e = tarEntries(a.tar).find((x) => x.name === 'db/000013.sst')!;
  const k = frames.findIndex((f) => f.tarStart > e.dataOffset && f.tarEnd < e.dataOffset + e.size);
  t.ok(k > 0, 'a frame entirely inside db/000013.sst');
  const damaged = Buffer.from(bytes);
  damaged[Math.floor((frames[k].start + frames[k].end) / 2)] ^= 0x55;
  const file = path.join(dir, 'zflip.tar.zst');
  fs.writeFileSync(file, damaged);
  const r = await cli(['backup', 'verify', '--json', file]);
  t.equal(r.code, 1);
  const j = JSON.parse(r.stdout);
  t.equal(j.status, 'INVALID');
  t.match(j.problems[0], { path: 'db/000013.sst', code: 'GUTS_CORRUPT', message: /damaged zstd frame/ });
  t.equal(j.problems.length, 1, 'frames are independent: everything after the damaged frame still checks out');
  t.equal(j.created, '2025-01-01T02:00:00Z');

  // stock single-frame zstd: no resync possible, still INVALID
  const one = Buffer.from(fs.readFileSync(buildArchive(dir, 'one.tar.zst', { files: sampleFiles(), compression: 'zstd', sidecar: false }).path));
  one[Math.floor(one.length / 2)] ^= 0x55;
  fs.writeFileSync(path.join(dir, 'one-bad.tar.zst'), one);
  const r1 = await verifyBackup({ file: path.join(dir, 'one-bad.tar.zst') });
  t.equal(r1.status, 'INVALID');
});

t.test('a truncated archive names the file where the data ends', async (t) => {
  const dir = t.testdir();
  const a = buildArchive(dir, 'base.tar', { files: sampleFiles(), compression: 'none', sidecar: false });
  const { bytes, frames } = zstdFramesWithMap(dir, a.tar, FRAME);
  const e = tarEntries(a.tar).find((x) => x.name === 'db/000013.sst')!;
  const k = frames.findIndex((f) => f.tarStart > e.dataOffset && f.tarEnd < e.dataOffset + e.size);
  const file = path.join(dir, 'cut.tar.zst');
  fs.writeFileSync(file, bytes.subarray(0, Math.floor((frames[k].start + frames[k].end) / 2)));
  const r = await cli(['backup', 'verify', file]);
  t.equal(r.code, 1);
  t.match(r.stdout, /^CORRUPT db\/000013\.sst: archive truncated/m);
  t.match(r.stdout, /^CORRUPT MANIFEST\.json: not found/m);

  for (const how of ['none', 'gzip'] as const) {
    const f = writeArchive(dir, `cut-${how}`, a.tar, how);
    const b = fs.readFileSync(f);
    const cutAt = how === 'none' ? e.dataOffset + 1000 : Math.floor(b.length * 0.5);
    fs.writeFileSync(f, b.subarray(0, cutAt));
    const rep = await verifyBackup({ file: f });
    t.equal(rep.status, 'INVALID', how);
    t.ok(rep.problems.some((p) => /truncated/.test(p.message)), how);
  }
  const rn = await verifyBackup({ file: writeArchive(dir, 'cut-plain2.tar', a.tar.subarray(0, e.dataOffset + 1000), 'none') });
  t.match(rn.problems[0], { path: 'db/000013.sst', message: /archive truncated: \d+ of 500000 bytes of data missing/ });
});

t.test('sidecar mismatch, garbage and usage errors', async (t) => {
  const dir = t.testdir();
  const a = buildArchive(dir, 's.tar.zst', { files: sampleFiles() });
  fs.writeFileSync(a.path + '.sha256', `${'0'.repeat(64)}  s.tar.zst\n`);
  const r = await cli(['backup', 'verify', a.path]);
  t.equal(r.code, 1);
  t.match(r.stdout, /^CORRUPT s\.tar\.zst\.sha256: SHA-256 of the archive is [0-9a-f]{64}, s\.tar\.zst\.sha256 says 0{64}$/m);

  const junk = path.join(dir, 'junk.tar.zst');
  fs.writeFileSync(junk, 'this is not an archive at all\n');
  // not a backup at all: its own code and exit 2, not "corrupt" (test/not-archive.test.ts has the boundary)
  const rj = await cli(['backup', 'verify', junk]);
  t.equal(rj.code, 2);
  t.match(rj.stderr, /^guts-node: GUTS_NOT_ARCHIVE: /);

  const missing = await cli(['backup', 'verify', path.join(dir, 'nope.tar.zst')]);
  t.equal(missing.code, 2);
  t.match(missing.stderr, /GUTS_NOT_FOUND/);
  const usage = await cli(['backup', 'verify']);
  t.equal(usage.code, 2);
});

t.test('--deep extracts and runs the full object check', async (t) => {
  const verifyDataDir = await loadVerifyDataDir();
  if (!verifyDataDir) {
    t.skip('src/verify.ts does not export verifyDataDir yet');
    return;
  }
  const { GutsStore } = await import('../src/store');
  const { checkpointFiles } = await import('./fixtures/archives');
  const dir = t.testdir();
  const store = await GutsStore.open(path.join(dir, 'src'), { create: true });
  await store.putRepo('alice/repo');
  await store.putObjects('alice/repo', [
    { type: 'blob', data: Buffer.from('hello\n') },
    { type: 'blob', data: Buffer.from('world\n') },
  ]);
  const counts = await store.counts();
  await store.native.checkpoint(path.join(dir, 'ck'), { db: true, consensus: true });
  await store.close();
  const a = buildArchive(dir, 'deep.tar.zst', { files: checkpointFiles(path.join(dir, 'ck')), objects: { commit: counts.commit, tree: counts.tree, blob: counts.blob, tag: counts.tag }, repositories: counts.repositories });
  const good = await cli(['backup', 'verify', '--deep', '--json', a.path]);
  t.equal(good.code, 0, good.stdout + good.stderr);
  t.equal(JSON.parse(good.stdout).deep.checked, true);
  const b = buildArchive(dir, 'deep-bad.tar.zst', { files: checkpointFiles(path.join(dir, 'ck')), objects: { commit: 0, tree: 0, blob: counts.blob + 1, tag: 0 }, repositories: counts.repositories });
  const bad = await cli(['backup', 'verify', '--deep', b.path]);
  t.equal(bad.code, 1);
  t.match(bad.stdout, /MISMATCH blob count/);
  t.same(fs.readdirSync(dir).filter((n) => n.startsWith('.guts-verify-')), [], 'temp dir removed');
});
