// guts-node wal push / wal fetch with an s3:// archive (--archive-dir and
// wal.archive_dir), against s3rver on loopback: never replaces a different
// file, identical re-push is fine, fetch is atomic, absent = exit 1.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { BIN } from '../lib/node-proc';
import { startS3, storedKeys } from '../lib/s3';
import { encodeSegment, ZERO_CHECKSUM } from '../../src/wal/segment';

t.test('wal push / fetch to s3://', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'guts-wals3-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const s3 = await startS3(['guts-wal']);
  t.teardown(() => s3.stop());
  const config = path.join(dir, 'config.yaml');
  fs.writeFileSync(config, 'wal:\n  archive_dir: s3://guts-wal/node-1\n');
  const cli = (args: string[]) => {
    const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, ...s3.env, GUTS_CONFIG: config } });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const name = '00000001-0000000000000007.gwal';
  const seg = path.join(dir, name);
  // wal push archives only valid segments: two that differ in their previous-checksum field
  const segment = async (prev: string) => (await encodeSegment({ timeline: 1, segment: 7, dbFirstSeq: 1, consensusFirstSeq: 1, prevChecksum: prev, records: [] })).file;
  const one = await segment(ZERO_CHECKSUM);
  const other = await segment('ab'.repeat(32));
  fs.writeFileSync(seg, one);
  const p = cli(['wal', 'push', seg]);
  t.equal(p.code, 0, p.stderr);
  t.same(storedKeys(s3, 'guts-wal'), [`node-1/${name}`], 'stored under its name (wal.archive_dir)');
  t.equal(cli(['wal', 'push', seg]).code, 0, 'identical bytes again: fine');
  fs.writeFileSync(seg, other);
  const diff = cli(['wal', 'push', seg]);
  t.equal(diff.code, 2, 'different bytes under an archived name: refused');
  t.match(diff.stderr, /GUTS_EXISTS: .*s3:\/\/guts-wal\/node-1\/00000001-0000000000000007\.gwal/);
  const dest = path.join(dir, 'fetched');
  const f = cli(['wal', 'fetch', name, dest, '--archive-dir', 's3://guts-wal/node-1']);
  t.equal(f.code, 0, f.stderr);
  t.same(fs.readFileSync(dest), one, 'fetched bytes');
  const missing = cli(['wal', 'fetch', '00000001-0000000000000008.gwal', path.join(dir, 'nope')]);
  t.equal(missing.code, 1, 'not archived: exit 1 (restore_command convention)');
  t.notOk(fs.existsSync(path.join(dir, 'nope')));
  t.same(fs.readdirSync(dir).filter((n) => n.startsWith('.')), [], 'no temp file left');
  t.notOk([p, diff, f, missing].some((r) => (r.stdout + r.stderr).includes(s3.secret)), 'secret never printed');
});
