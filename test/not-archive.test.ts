// Issue 11 items 11 and 4. A file that is not a guts-node backup at all is
// GUTS_NOT_ARCHIVE, exit 2 (a cron alert must not read it as "backup
// corrupt"); a damaged backup stays exit 1 (the boundary: docs/FORMAT.md,
// "Reader rules"). Names from an archive never reach the terminal raw.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { escapeControls, formatError, GutsError } from '../src/errors';
import { buildArchive, compress, END, noise, rawArchive, rawEntry, sampleFiles, SrcFile } from './fixtures/archives';
import { cli } from './fixtures/cli';
import { treeState } from './reliability/helpers';

t.test('files that are not backups: GUTS_NOT_ARCHIVE, exit 2, for verify and restore; nothing written', async (t) => {
  const dir = t.testdir({ data: { db: { CURRENT: 'MANIFEST-000001\n' } } });
  const target = path.join(dir, 'data');
  const before = treeState(target);
  const yaml = Buffer.from('storage:\n  data_dir: /var/lib/guts\n');
  const other = execFileSync('tar', ['-cf', '-', '-C', path.join(dir, 'data'), 'db']);
  const notGuts = Buffer.concat([rawEntry({ name: 'db', type: '5' }), rawEntry({ name: 'db/CURRENT', data: Buffer.from('x') }), END]);
  const files: Record<string, Buffer> = {
    'config.yaml': yaml,
    'random.bin': noise(100_000, 3),
    'empty.tar.zst': Buffer.alloc(0),
    'zeros.tar': Buffer.alloc(1024),
    'other.tar': other,
    'other.tar.zst': compress(dir, other, 'zstd'),
    'first-entry-not-index.tar.gz': compress(dir, notGuts, 'gzip'),
    'text.zst': compress(dir, Buffer.from('hello\n'.repeat(1000)), 'zstd'),
    'yaml.gz': compress(dir, yaml, 'gzip'),
  };
  for (const [name, bytes] of Object.entries(files)) {
    const file = path.join(dir, name);
    fs.writeFileSync(file, bytes);
    const v = cli(['backup', 'verify', file]);
    t.equal(v.status, 2, `${name}: verify exit 2`);
    t.match(v.stderr, new RegExp(`^guts-node: GUTS_NOT_ARCHIVE: ${file.replace(/[.]/g, '\\.')} is not a guts-node backup archive: .+\n$`), `${name}: ${v.stderr}`);
    t.equal(v.stdout, '', `${name}: no report block`);
    const r = cli(['backup', 'restore', file, '--target', target, '--force']);
    t.equal(r.status, 2, `${name}: restore exit 2`);
    t.match(r.stderr, /^guts-node: GUTS_NOT_ARCHIVE: /, `${name}: ${r.stderr}`);
    t.same(treeState(target), before, `${name}: target untouched`);
  }
  t.same(fs.readdirSync(dir).filter((n) => n.includes('.restore-')), [], 'no staging dir left');

  // a sidecar that matches does not make a YAML file a backup
  const yamlFile = path.join(dir, 'config.yaml');
  fs.writeFileSync(`${yamlFile}.sha256`, `${crypto.createHash('sha256').update(yaml).digest('hex')}  config.yaml\n`);
  t.equal(cli(['backup', 'verify', yamlFile]).status, 2);
});

t.test('damaged backups stay exit 1 (GUTS_CORRUPT)', async (t) => {
  const dir = t.testdir();
  const a = buildArchive(dir, 'a.tar', { files: sampleFiles(), compression: 'none', sidecar: false });
  const flipped = Buffer.from(a.tar);
  flipped[148] ^= 0x01; // first header's checksum: the GUTS-INDEX header is damaged, not foreign
  const damaged: Record<string, Buffer> = {
    'cut inside the index data.tar': a.tar.subarray(0, 600),
    'cut inside the first header.tar': a.tar.subarray(0, 300),
    'first header checksum.tar': flipped,
    'zstd frame garbage.tar.zst': Buffer.concat([compress(dir, a.tar, 'zstd').subarray(0, 40), noise(4000, 7)]),
    'gzip cut.tar.gz': compress(dir, a.tar, 'gzip').subarray(0, 2000),
  };
  // what is left of a backup whose sidecar names other bytes: cut to nothing, or to a few bytes
  const z = buildArchive(dir, 'z.tar.zst', { files: sampleFiles() });
  for (const len of [0, 3, 100]) {
    fs.writeFileSync(z.path, fs.readFileSync(z.path).subarray(0, len));
    const v = cli(['backup', 'verify', z.path]);
    t.equal(v.status, 1, `cut to ${len} with its sidecar: verify exit 1 (${v.stderr.trim()})`);
    t.match(v.stdout, /^CORRUPT z\.tar\.zst\.sha256: SHA-256 of the archive is /m);
    const r = cli(['backup', 'restore', z.path, '--target', path.join(dir, 'data')]);
    t.equal(r.status, 1, `cut to ${len} with its sidecar: restore exit 1`);
    t.match(r.stderr, len < 4 ? /^guts-node: GUTS_CORRUPT: SHA-256 of .* says [0-9a-f]{64}; it no longer reads as a backup/ : /^guts-node: GUTS_CORRUPT: /);
  }
  for (const [name, bytes] of Object.entries(damaged)) {
    const file = path.join(dir, name.replace(/ /g, '-'));
    fs.writeFileSync(file, bytes);
    const v = cli(['backup', 'verify', file]);
    t.equal(v.status, 1, `${name}: verify exit 1 (${v.stderr.trim()})`);
    t.match(v.stdout, /Status: INVALID/);
    const r = cli(['backup', 'restore', file, '--target', path.join(dir, 'data')]);
    t.equal(r.status, 1, `${name}: restore exit 1 (${r.stderr.trim()})`);
    t.match(r.stderr, /^guts-node: GUTS_CORRUPT: /);
  }
});

// eslint-disable-next-line no-control-regex
const RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202e]/;

t.test('control characters in entry names and paths are escaped in every message', async (t) => {
  const dir = t.testdir();
  const legit: SrcFile[] = [
    { path: 'db/CURRENT', data: Buffer.from('MANIFEST-000001\n') },
    { path: 'db/MANIFEST-000001', data: Buffer.from('m') },
  ];
  const names = ['db/\u001b]2;pwned\u0007\u001b[2J', 'db/cr\rline\nfeed', 'db/c1\u009b31m', 'db/rtl\u202etxt.exe', 'db/del\u007f'];
  const entries = [rawEntry({ name: 'db', type: '5' }), ...legit.map((f) => rawEntry({ name: f.path, data: f.data }))];
  for (const [i, name] of names.entries()) {
    const tar = rawArchive(legit, [...entries, rawEntry({ name, data: Buffer.from('x') })]).tar;
    const file = path.join(dir, `esc${i}.tar`);
    fs.writeFileSync(file, tar);
    const v = cli(['backup', 'verify', file]);
    t.equal(v.status, 1);
    t.notMatch(v.stdout + v.stderr, RAW_CONTROL, `verify of ${JSON.stringify(name)}: no raw control character`);
    t.equal(v.stdout.split('\n').filter((l) => l.startsWith('UNSAFE') || l.startsWith('CORRUPT')).length, 1, 'one problem line per problem');
    const r = cli(['backup', 'restore', file, '--target', path.join(dir, 'data')]);
    t.ok(r.status === 1 || r.status === 2, `restore refused (${r.status})`); // UNSAFE_PATH (C0) or outside the layout (C1, bidi)
    t.notMatch(r.stderr, RAW_CONTROL, `restore of ${JSON.stringify(name)}: no raw control character`);
    t.equal(r.stderr.split('\n').length, 2, 'one line');
  }
  const v0 = cli(['backup', 'verify', path.join(dir, 'esc0.tar')]);
  t.match(v0.stdout, /^UNSAFE db\/\\x1b\]2;pwned\\x07\\x1b\[2J: control character in path$/m);
  const r2 = cli(['backup', 'restore', path.join(dir, 'esc2.tar'), '--target', path.join(dir, 'data')]);
  t.match(r2.stderr, /db\/c1\\x9b31m/);

  // a path given on the command line, quoted by a TS error
  const missing = path.join(dir, 'no\u001b[31msuch.tar.zst');
  const m = cli(['backup', 'verify', missing]);
  t.equal(m.status, 2);
  t.notMatch(m.stderr, RAW_CONTROL);
  t.match(m.stderr, /no\\x1b\[31msuch\.tar\.zst/);
  // a layout problem names a printable-but-odd entry: kept (UTF-8 is not escaped), bidi override escaped
  const odd = buildArchive(dir, 'odd.tar.zst', { files: [...sampleFiles(), { path: 'dé\u202ejà', data: Buffer.from('x') }] });
  const o = cli(['backup', 'verify', odd.path]);
  t.match(o.stdout, /^CORRUPT dé\\u202Ejà: file is not part of a guts-node backup/m);
});

t.test('escapeControls and formatError', async (t) => {
  t.equal(escapeControls('a\u001bb\r\n\u0000\u007f\u0085\u2028\u202ez'), 'a\\x1bb\\x0d\\x0a\\x00\\x7f\\x85\\u2028\\u202Ez');
  t.equal(escapeControls('plain dé 日本 \\x41'), 'plain dé 日本 \\x41', 'printable text and backslashes kept');
  t.equal(formatError(new GutsError('GUTS_CORRUPT', 'db/\u001b[2J: bad\nsecond')), 'guts-node: GUTS_CORRUPT: db/\\x1b[2J: bad\\x0asecond');
});
