import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { validateConfig } from '../../src/config';
import { runWalCommand } from '../../src/wal/command';
import { encodeSegment, ZERO_CHECKSUM } from '../../src/wal/segment';
import { DirLocation, openWalLocation, registerWalLocationScheme, walSink, walSource, WalLocation } from '../../src/wal/target';
import { BIN, cli } from '../fixtures/cli';

const SEG = '00000001-0000000000000001.gwal';

/** A PATH entry with a `guts-node` that runs this checkout, as an operator's command line names it. */
function binDir(dir: string): string {
  const d = path.join(dir, 'bin');
  fs.mkdirSync(d);
  fs.writeFileSync(path.join(d, 'guts-node'), `#!/bin/sh\nexec "${process.execPath}" "${BIN}" "$@"\n`, { mode: 0o755 });
  return d;
}

t.test('DirLocation: atomic put, identical re-push, different bytes refused, get, list', async (t) => {
  const dir = t.testdir({ src: { [SEG]: 'one', other: 'two', 'h.history': 'hist' } });
  const archive = path.join(dir, 'archive'); // created on the first put
  const loc = new DirLocation(archive);
  t.equal(await loc.put(SEG, path.join(dir, 'src', SEG)), 'stored');
  t.equal(fs.readFileSync(path.join(archive, SEG), 'utf8'), 'one');
  t.equal(fs.statSync(path.join(archive, SEG)).mode & 0o777, 0o600);
  t.equal(fs.statSync(archive).mode & 0o777, 0o700);
  t.equal(await loc.put(SEG, path.join(dir, 'src', SEG)), 'unchanged');
  await t.rejects(loc.put(SEG, path.join(dir, 'src', 'other')), { code: 'GUTS_EXISTS' });
  t.equal(fs.readFileSync(path.join(archive, SEG), 'utf8'), 'one', 'the archived file is never replaced');
  await t.rejects(loc.put('../evil', path.join(dir, 'src', 'other')), { code: 'GUTS_INVALID_ARGUMENT' });
  await t.rejects(loc.put('.hidden', path.join(dir, 'src', 'other')), { code: 'GUTS_INVALID_ARGUMENT' });
  await t.rejects(loc.put('x.gwal', path.join(dir, 'src', 'missing')), { code: 'GUTS_NOT_FOUND' });
  t.equal(await loc.put('00000002.history', path.join(dir, 'src', 'h.history')), 'stored');

  // racing pushers of the same bytes: all succeed, one stores
  const results = await Promise.all(Array.from({ length: 6 }, () => loc.put('00000001-0000000000000002.gwal', path.join(dir, 'src', 'other'))));
  t.equal(results.filter((r) => r === 'stored').length, 1);
  t.same(fs.readdirSync(archive).filter((n) => n.startsWith('.')), [], 'no temp files left');
  t.same(await loc.list(), ['00000001-0000000000000001.gwal', '00000001-0000000000000002.gwal', '00000002.history']);

  const dest = path.join(dir, 'fetched');
  t.equal(await loc.get(SEG, dest), true);
  t.equal(fs.readFileSync(dest, 'utf8'), 'one');
  t.equal(await loc.get('00000001-0000000000000009.gwal', path.join(dir, 'absent')), false);
  t.notOk(fs.existsSync(path.join(dir, 'absent')));
  t.same(await new DirLocation(path.join(dir, 'none')).list(), []);
});

t.test('openWalLocation: local paths, file://, registered schemes, unknown schemes', async (t) => {
  t.equal(openWalLocation('/backup/wal').url, '/backup/wal');
  t.equal(openWalLocation('file:///backup/w%20al').url, '/backup/w al');
  t.throws(() => openWalLocation(''), { code: 'GUTS_INVALID_CONFIG' });
  t.throws(() => openWalLocation('gopher://x/y'), { code: 'GUTS_INVALID_CONFIG' });
  const seen: string[] = [];
  const fake: WalLocation = { url: 'mem://x', put: async () => 'stored', get: async () => false };
  registerWalLocationScheme('mem', (spec) => {
    seen.push(spec);
    return fake;
  });
  t.equal(openWalLocation('mem://bucket/prefix'), fake);
  t.same(seen, ['mem://bucket/prefix']);
});

t.test('CLI: wal push / wal fetch against wal.archive_dir, exit codes and --json', async (t) => {
  const one = (await encodeSegment({ timeline: 1, segment: 1, dbFirstSeq: 1, consensusFirstSeq: 1, prevChecksum: ZERO_CHECKSUM, records: [] })).file;
  const other = (await encodeSegment({ timeline: 1, segment: 1, dbFirstSeq: 1, consensusFirstSeq: 1, prevChecksum: 'ab'.repeat(32), records: [] })).file;
  const dir = t.testdir({ pending: { [SEG]: one }, other: { [SEG]: other }, junk: { 'notes.txt': 'hello', [SEG]: 'segment one', '00000002.history': '{}' } });
  const archive = path.join(dir, 'archive');
  const config = path.join(dir, 'config.yaml');
  fs.writeFileSync(config, `wal:\n  archive_dir: ${archive}\n`);
  const env = { GUTS_CONFIG: config };
  const seg = path.join(dir, 'pending', SEG);

  let r = cli(['wal', 'push', seg], { env });
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stderr, '', 'quiet on success');
  t.same(fs.readFileSync(path.join(archive, SEG)), one);
  r = cli(['wal', 'push', seg, '--json'], { env });
  t.equal(r.status, 0);
  t.same(JSON.parse(r.stdout), { name: SEG, path: seg, archive, action: 'unchanged', size_bytes: one.length });
  // only WAL files, and only valid ones, are archived
  for (const [f, why] of [['notes.txt', /not a WAL file name/], [SEG, /not a valid WAL segment/], ['00000002.history', /not a valid WAL history file/]] as const) {
    const bad = cli(['wal', 'push', path.join(dir, 'junk', f)], { env });
    t.equal(bad.status, 2, f);
    t.match(bad.stderr, new RegExp(`^guts-node: GUTS_INVALID_ARGUMENT: .*${why.source}`), f);
  }
  t.same(fs.readdirSync(archive), [SEG], 'nothing else archived');
  r = cli(['wal', 'push', path.join(dir, 'other', SEG)], { env });
  t.equal(r.status, 2);
  t.match(r.stderr, /^guts-node: GUTS_EXISTS: /);

  const dest = path.join(dir, 'restore', 'RECOVERY.tmp');
  fs.mkdirSync(path.dirname(dest));
  r = cli(['wal', 'fetch', SEG, dest], { env });
  t.equal(r.status, 0, r.stderr);
  t.same(fs.readFileSync(dest), one);
  r = cli(['wal', 'fetch', '00000001-00000000000000ff.gwal', path.join(dir, 'restore', 'x')], { env });
  t.equal(r.status, 1, 'not archived: exit 1');
  t.equal(r.stderr, '', 'without noise');
  t.notOk(fs.existsSync(path.join(dir, 'restore', 'x')));
  r = cli(['wal', 'fetch', '00000001-00000000000000ff.gwal', path.join(dir, 'restore', 'x'), '--json'], { env });
  t.equal(r.status, 1);
  t.equal(JSON.parse(r.stdout).found, false);

  // --archive-dir overrides; no archive configured at all is a config error
  r = cli(['wal', 'push', seg, '--archive-dir', path.join(dir, 'second')]);
  t.equal(r.status, 0, r.stderr);
  t.ok(fs.existsSync(path.join(dir, 'second', SEG)));
  r = cli(['wal', 'push', seg]);
  t.equal(r.status, 2);
  t.match(r.stderr, /GUTS_INVALID_CONFIG: .*wal\.archive_dir/);
  r = cli(['wal', 'fetch', '../x', dest], { env });
  t.equal(r.status, 2);
  t.match(r.stderr, /GUTS_INVALID_ARGUMENT/);
});

t.test('the commands as an operator configures them: guts-node wal push %p / wal fetch %f %p through /bin/sh', async (t) => {
  const one = (await encodeSegment({ timeline: 1, segment: 1, dbFirstSeq: 1, consensusFirstSeq: 1, prevChecksum: ZERO_CHECKSUM, records: [] })).file;
  const dir = t.testdir({ 'config.yaml': '', 'data dir': { wal: { pending: { [SEG]: one } } } });
  const archive = path.join(dir, 'archive');
  const config = path.join(dir, 'config.yaml');
  let r = cli(['--config', config, 'config', 'set', '--create', 'wal.archive_dir', archive]);
  t.equal(r.status, 0, r.stderr);
  cli(['--config', config, 'config', 'set', 'wal.archive_command', 'guts-node wal push "%p"']);
  cli(['--config', config, 'config', 'set', 'wal.restore_command', 'guts-node wal fetch %f "%p"']);
  const env = { GUTS_CONFIG: config, PATH: `${binDir(dir)}:${process.env.PATH}` };
  const seg = path.join(dir, 'data dir', 'wal', 'pending', SEG);
  const push = await runWalCommand('guts-node wal push "%p"', { p: seg, f: SEG }, undefined, { env });
  t.ok(push.ok, push.stderr);
  const again = await runWalCommand('guts-node wal push "%p"', { p: seg, f: SEG }, undefined, { env });
  t.ok(again.ok, 'identical re-push succeeds');
  const dest = path.join(dir, 'data dir', 'fetched');
  const fetch = await runWalCommand('guts-node wal fetch %f "%p"', { p: dest, f: SEG }, undefined, { env });
  t.ok(fetch.ok, fetch.stderr);
  t.same(fs.readFileSync(dest), one);
  const missing = await runWalCommand('guts-node wal fetch %f "%p"', { p: dest + '2', f: '00000001-0000000000000002.gwal' }, undefined, { env });
  t.equal(missing.exit_code, 1);
  t.equal(missing.stderr, '');
});

t.test('walSource / walSink: commands take precedence over the built-in location', async (t) => {
  const dir = t.testdir({ archive: { [SEG]: 'archived' }, src: { 'a.history': 'history' }, dest: {} });
  const archive = path.join(dir, 'archive');
  const cfg = (wal: Record<string, string>) => validateConfig({ wal }, 'test');

  const builtIn = walSource(cfg({ archive_dir: archive }));
  t.equal(builtIn.describe, archive);
  t.equal(await builtIn.fetch(SEG, path.join(dir, 'dest', 'a')), true);
  t.equal(await builtIn.fetch('00000001-0000000000000002.gwal', path.join(dir, 'dest', 'b')), false);
  t.same(await builtIn.list!(), [SEG]);

  const cp = walSource(cfg({ restore_command: `cp ${archive}/%f %p` }));
  t.match(cp.describe, /wal\.restore_command/);
  t.equal(cp.list, undefined, 'a command cannot list');
  t.equal(await cp.fetch(SEG, path.join(dir, 'dest', 'c')), true);
  t.equal(fs.readFileSync(path.join(dir, 'dest', 'c'), 'utf8'), 'archived');
  t.equal(await cp.fetch('00000001-0000000000000002.gwal', path.join(dir, 'dest', 'd')), false, 'cp exits 1: not archived');
  await t.rejects(walSource(cfg({ restore_command: 'exit 2 # %f %p' })).fetch(SEG, path.join(dir, 'dest', 'e')), { code: 'GUTS_IO' });
  await t.rejects(walSource(cfg({ restore_command: 'true # %f %p' })).fetch(SEG, path.join(dir, 'dest', 'f')), { code: 'GUTS_IO' }, 'exit 0 without the file');
  t.throws(() => walSource(cfg({})), { code: 'GUTS_INVALID_CONFIG' });

  const sink = walSink(cfg({ archive_command: `cp %f ${archive}/%f`, archive_dir: path.join(dir, 'unused') }));
  await sink.push(path.join(dir, 'src', 'a.history'));
  t.equal(fs.readFileSync(path.join(archive, 'a.history'), 'utf8'), 'history');
  await t.rejects(walSink(cfg({ archive_command: 'false # %p' })).push(path.join(dir, 'src', 'a.history')), { code: 'GUTS_IO' });
  const builtInSink = walSink(cfg({ archive_dir: path.join(dir, 'other') }));
  await builtInSink.push(path.join(dir, 'src', 'a.history'));
  t.ok(fs.existsSync(path.join(dir, 'other', 'a.history')));
});
