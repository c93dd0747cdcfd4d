// Issue 11 items 5 and 17: verify and restore accept exactly the layout the
// tool writes for the manifest's kind (src/archive-layout.ts), and verify says
// when an archive holds the node's private key and what --deep covered.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { verifyBackup } from '../src/backup-verify';
import { restoreBackup } from '../src/restore';
import { buildArchive, BuildOptions, sampleFiles, SrcFile } from './fixtures/archives';
import { cli } from './fixtures/cli';
import { treeState } from './reliability/helpers';

const consensusFiles = () => sampleFiles().filter((f) => f.path.startsWith('consensus/'));
const extra = (p: string, data = 'x\n'): SrcFile => ({ path: p, data: Buffer.from(data) });
const future = new Date(Date.now() + 365 * 86400e3).toISOString().replace(/\.\d+Z$/, 'Z');

/** name -> archive options that make something the writer never produces. */
const bad: Record<string, BuildOptions> = {
  'only GUTS-INDEX and MANIFEST.json': { files: [] },
  'a runtime node.pid': { files: [...sampleFiles(), extra('node.pid', '4242\n')] },
  'a forged last-backup.json dated in the future': {
    files: [...sampleFiles(), extra('last-backup.json', JSON.stringify({ file: '/b/x.tar.zst', created: future, kind: 'full', size_bytes: 1, checksum: 'sha256:00' }))],
  },
  'an admin.sock stand-in': { files: [...sampleFiles(), extra('admin.sock')] },
  'a checkpoints/ dir': { files: [...sampleFiles(), extra('checkpoints/cli-1-2/CURRENT', 'MANIFEST-000001\n')] },
  'an unknown file in db/': { files: [...sampleFiles(), extra('db/notes.txt')] },
  'a db/ without its MANIFEST': { files: sampleFiles().filter((f) => !f.path.startsWith('db/MANIFEST-')) },
  'a full backup without db/': { files: consensusFiles() },
  'a consensus-only backup holding db/': { files: sampleFiles(), kind: 'consensus-only', objects: { commit: 0, tree: 0, blob: 0, tag: 0 }, repositories: 0 },
  'a consensus-only backup claiming objects': { files: consensusFiles(), kind: 'consensus-only', objects: { commit: 5, tree: 0, blob: 0, tag: 0 }, repositories: 1 },
  'created in the future': { files: sampleFiles(), editManifest: (m) => (m.created = future) },
  'created not a UTC time': { files: sampleFiles(), editManifest: (m) => (m.created = 'yesterday') },
  'a negative count': { files: sampleFiles(), objects: { commit: -1, tree: 0, blob: 0, tag: 0 } },
  'a fractional count': { files: sampleFiles(), repositories: 1.5 },
  'format_version 2': { files: sampleFiles(), editManifest: (m) => (m.format_version = 2) },
  'an unknown manifest field': { files: sampleFiles(), editManifest: (m) => (m.last_backup = { created: future }) },
  'a manifest without hostname': { files: sampleFiles(), editManifest: (m) => delete m.hostname },
};

t.test('archives that are not the layout of their kind: verify INVALID, restore refuses and leaves the target as it was', async (t) => {
  const dir = t.testdir({ data: { db: { CURRENT: 'MANIFEST-000001\n' }, consensus: { CURRENT: 'MANIFEST-000001\n' } } });
  const target = path.join(dir, 'data');
  const before = treeState(target);
  // the same sample files, as written, are fine for both kinds
  t.equal((await verifyBackup({ file: buildArchive(dir, 'ok.tar.zst', { files: sampleFiles() }).path })).status, 'VALID');
  const cons = buildArchive(dir, 'ok-c.tar.zst', { files: consensusFiles(), kind: 'consensus-only' });
  t.equal((await verifyBackup({ file: cons.path })).status, 'VALID');
  for (const [name, opts] of Object.entries(bad)) {
    const a = buildArchive(dir, 'bad.tar.zst', opts);
    const v = await verifyBackup({ file: a.path });
    t.equal(v.status, 'INVALID', `${name}: verify INVALID`);
    t.ok(v.problems.length > 0 && v.problems.every((p) => p.code === 'GUTS_CORRUPT'), `${name}: ${JSON.stringify(v.problems)}`);
    await t.rejects(restoreBackup({ file: a.path, target, force: true }), { code: 'GUTS_CORRUPT' }, `${name}: restore --force refuses`);
    t.same(treeState(target), before, `${name}: target untouched`);
  }
  t.same(fs.readdirSync(dir).filter((n) => n.includes('.restore-')), [], 'no staging dir left');
  // the CLI: one line per problem naming the entry, exit 1
  const pid = buildArchive(dir, 'pid.tar.zst', bad['a runtime node.pid']);
  const r = cli(['backup', 'verify', pid.path]);
  t.equal(r.status, 1);
  t.match(r.stdout, /^CORRUPT node\.pid: file is not part of a guts-node backup/m);
  const rr = cli(['backup', 'restore', pid.path, '--target', target, '--force']);
  t.equal(rr.status, 1);
  t.match(rr.stderr, /^guts-node: GUTS_CORRUPT: node\.pid: /);
});

t.test('real backups of every kind verify VALID; the key is reported; --deep says what it covered', async (t) => {
  const dir = t.testdir();
  const data = path.join(dir, 'data');
  const key = path.join(dir, 'node.key');
  const config = path.join(dir, 'config.yaml');
  fs.writeFileSync(config, `p2p:\n  key_file: ${key}\n`);
  const env = { GUTS_CONFIG: config };
  t.equal(cli(['--data-dir', data, 'dev', 'seed', '--size', '2MiB'], { env }).status, 0);
  t.equal(cli(['keygen', '--output', key], { env }).status, 0);
  const outs = {
    full: [path.join(dir, 'full.tar.zst'), []],
    key: [path.join(dir, 'key.tar.gz'), ['--include-key', '--include-config']],
    consensus: [path.join(dir, 'cons.tar'), ['--consensus-only']],
  } as const;
  for (const [what, [out, flags]] of Object.entries(outs)) {
    const c = cli(['--data-dir', data, 'backup', 'create', '--output', out, ...flags], { env });
    t.equal(c.status, 0, `${what}: ${c.stderr}`);
    const v = cli(['backup', 'verify', '--json', out], { env });
    t.equal(v.status, 0, `${what}: ${v.stdout}`);
    const j = JSON.parse(v.stdout);
    t.equal(j.status, 'VALID');
    t.equal(j.contains_private_key, what === 'key', `${what}: contains_private_key`);
    t.equal(j.contains_config, what === 'key', `${what}: contains_config`);
  }
  const text = cli(['backup', 'verify', outs.key[0]], { env });
  t.match(text.stdout, /^Private key: included \(keys\/node\.key/m);
  t.notMatch(cli(['backup', 'verify', outs.full[0]], { env }).stdout, /Private key/);

  const deep = cli(['backup', 'verify', '--deep', outs.full[0]], { env });
  t.equal(deep.status, 0, deep.stderr);
  const m = /^Deep: re-hashed ([\d,]+) objects \(.*\) in db\/, recounted types and repositories against MANIFEST\.json, checked ([\d,]+) refs against objects$/m.exec(deep.stdout);
  t.ok(m, deep.stdout);
  const dj = JSON.parse(cli(['backup', 'verify', '--deep', '--json', outs.full[0]], { env }).stdout);
  const total = dj.objects.commit + dj.objects.tree + dj.objects.blob + dj.objects.tag;
  t.equal(dj.deep.objects_rehashed, total, 'every object of the manifest re-hashed');
  t.equal(Number(m![1].replace(/,/g, '')), total);
  t.ok(dj.deep.bytes_rehashed > 0 && dj.deep.refs_checked > 0);
  const dc = cli(['backup', 'verify', '--deep', outs.consensus[0]], { env });
  t.match(dc.stdout, /^Deep: not run \(consensus-only archive holds no objects\)$/m);
});
