// backup list / prune: keep rules over synthetic series of backups (dates
// injected through names and manifests), on a local dir and on s3rver.
import t, { Test } from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { BackupEntry } from '../../src/backup/list';
import { decide, parseKeepWithin, policyFrom } from '../../src/backup/prune';
import { openLocation } from '../../src/location';
import { BIN } from '../lib/node-proc';
import { startS3, storedKeys } from '../lib/s3';

const H = 3600e3;
const D = 24 * H;

function entry(created: string, opts: Partial<BackupEntry> = {}): BackupEntry {
  const key = `guts-${created.replace(/[-:]/g, '').replace('T', '-').replace('Z', '')}.tar.zst`;
  return { key, url: '/b/' + key, kind: 'full', created, described_by: 'manifest', size_bytes: 10, objects: null, repositories: null, wal_position: null, sidecar: true, manifest: true, sha256: 'a'.repeat(64), valid: true, ...opts };
}

/** every 6 hours from 2026-11-01 to 2026-11-28 18:00 */
const series = Array.from({ length: 28 * 4 }, (_, i) => entry(new Date(Date.UTC(2026, 10, 1) + i * 6 * H).toISOString().replace(/\.000Z$/, 'Z')));
const kept = (ds: ReturnType<typeof decide>) => ds.filter((d) => d.keep).map((d) => d.entry.created).sort().reverse();

t.test('policies', async (t) => {
  t.same(kept(decide(series, { last: 3 })), ['2026-11-28T18:00:00Z', '2026-11-28T12:00:00Z', '2026-11-28T06:00:00Z'], 'keep-last 3');
  t.same(kept(decide(series, { daily: 3 })), ['2026-11-28T18:00:00Z', '2026-11-27T18:00:00Z', '2026-11-26T18:00:00Z'], 'keep-daily 3: the newest of each day');
  const weekly = decide(series, { weekly: 2 });
  t.same(kept(weekly), ['2026-11-28T18:00:00Z', '2026-11-22T18:00:00Z'], 'keep-weekly 2: the newest of each ISO week (weeks end on Sunday)');
  t.same(weekly.find((d) => d.keep)!.reasons.length > 0, true);
  t.equal(kept(decide(series, { within: 1 * D })).length, 5, 'keep-within 1d of the newest: 5 backups (both ends included)');
  const combined = decide(series, { last: 1, daily: 2 });
  t.same(combined.filter((d) => d.keep).map((d) => d.reasons).sort(), [['daily 2026-11-27'], ['last 1', 'daily 2026-11-28', 'newest valid']].sort(), 'reasons');
  t.equal(decide(series, { last: 1 }).filter((d) => !d.keep).length, series.length - 1);

  // the newest valid backup survives any policy
  const broken = [...series.slice(0, 10), entry('2026-12-01T00:00:00Z', { sidecar: false, valid: false })];
  const ds = decide(broken, { last: 1 });
  t.same(kept(ds), ['2026-12-01T00:00:00Z', series[9].created], 'newest (no sidecar) kept by the rule, newest valid kept regardless');
  t.same(ds.find((d) => d.entry.created === series[9].created)!.reasons, ['newest valid']);

  // consensus-only backups are a group of their own
  const mixed = [...series.slice(-4), ...Array.from({ length: 24 }, (_, h) => entry(`2026-11-29T${String(h).padStart(2, '0')}:00:00Z`, { kind: 'consensus-only', key: `consensus-${h}.tar.gz` }))];
  const m = decide(mixed, { last: 2 });
  t.equal(m.filter((d) => d.keep && d.entry.kind === 'full').length, 2, 'hourly consensus backups do not push out full ones');
  t.equal(m.filter((d) => d.keep && d.entry.kind === 'consensus-only').length, 2);

  t.throws(() => decide(series, {}), { code: 'GUTS_INVALID_ARGUMENT' });
  t.equal(parseKeepWithin('1d12h'), 36 * H);
  t.throws(() => parseKeepWithin('7 days'), { code: 'GUTS_INVALID_ARGUMENT' });
  const cfg = { keep_last: 0, keep_daily: 0, keep_weekly: 0, keep_within: '', retention_days: 7 };
  t.same(policyFrom({}, cfg), { within: 7 * D }, 'no rule anywhere: retention_days');
  t.same(policyFrom({}, { ...cfg, keep_daily: 7 }), { last: undefined, daily: 7, weekly: undefined, within: undefined }, 'config rules');
  t.same(policyFrom({ keepLast: 2 }, { ...cfg, keep_daily: 7 }), { last: 2, daily: undefined, weekly: undefined, within: undefined }, 'flags replace config rules');
});

/** A synthetic backup at a location: archive bytes, sidecar, manifest with the injected date. */
async function put(loc: ReturnType<typeof openLocation>, name: string, created: string, kind = 'full', withSidecar = true, segment?: number) {
  await loc.put(name, Buffer.alloc(100, 1));
  if (withSidecar) await loc.put(name + '.sha256', `${'b'.repeat(64)}  ${name}\n`);
  const manifest = { format: 'guts-backup', format_version: 1, tool: 'guts-store test', source_data_dir: '/var/lib/guts', hostname: 'h', consensus: { blocks: 1, finalized_height: 0 }, compression: { format: 'zstd', level: 3 }, created, kind,
    ...(kind === 'consensus-only'
      ? { objects: { commit: 0, tree: 0, blob: 0, tag: 0 }, repositories: 0, rocksdb: { consensus: { sequence: 7 } } }
      : { objects: { commit: 1, tree: 2, blob: 3, tag: 0 }, repositories: 1, rocksdb: { db: { sequence: 42 }, consensus: { sequence: 7 } } }), ...(segment ? { wal: { timeline: 1, segment, db_seq: 42, consensus_seq: 7 } } : {}), files: [], total_bytes: 0 };
  await loc.put(name + '.manifest.json', JSON.stringify(manifest));
}

function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, GUTS_CONFIG: '/dev/null', ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const seg = (n: number) => `00000001-${n.toString(16).padStart(16, '0')}.gwal`;

async function roundTrip(t: Test, where: string, walWhere: string, env: NodeJS.ProcessEnv, keys: () => string[], walKeys: () => string[]) {
  Object.assign(process.env, env);
  const loc = openLocation(where);
  const wal = openLocation(walWhere);
  for (let d = 1; d <= 10; d++) await put(loc, `guts-202611${String(d).padStart(2, '0')}-020000.tar.zst`, `2026-11-${String(d).padStart(2, '0')}T02:00:00Z`, 'full', true, d);
  await put(loc, 'consensus-13.tar.gz', '2026-11-10T13:00:00Z', 'consensus-only');
  await put(loc, 'guts-20261111-020000.tar.zst', '2026-11-11T02:00:00Z', 'full', false, 11); // newest, but no sidecar
  // the WAL archive: segments 1..12 and a timeline history
  for (let n = 1; n <= 12; n++) await wal.put(seg(n), `segment ${n}`);
  await wal.put('00000002.history', '{}');
  const list = cli(['backup', 'list', where, '--json'], env);
  t.equal(list.code, 0, list.stderr);
  const entries = JSON.parse(list.stdout);
  t.equal(entries.length, 12);
  t.same(Object.keys(entries[0]).sort(), ['created', 'described_by', 'key', 'kind', 'manifest', 'objects', 'repositories', 'sha256', 'sidecar', 'size_bytes', 'url', 'valid', 'wal_position'].sort());
  t.same(entries[0].wal_position, { timeline: 1, segment: 11, db_seq: 42 });
  t.equal(entries[0].sidecar, false, 'the sidecar-less one is listed as such');
  const text = cli(['backup', 'list', where], env);
  t.match(text.stdout, /consensus-only .*consensus-13\.tar\.gz/);

  const before = keys();
  const walBefore = walKeys();
  const dry = cli(['backup', 'prune', where, '--keep-last', '2', '--archive-dir', walWhere, '--dry-run', '--json'], env);
  t.equal(dry.code, 0, dry.stderr);
  t.same(keys(), before, 'dry run removes nothing');
  t.same(walKeys(), walBefore, 'dry run removes no WAL');
  t.equal(JSON.parse(dry.stdout).wal.removed.length, 9, 'dry run names the WAL segments it would remove');
  const r = cli(['backup', 'prune', where, '--keep-last', '2', '--archive-dir', walWhere, '--json'], env);
  t.equal(r.code, 0, r.stderr);
  const res = JSON.parse(r.stdout);
  t.same(res.kept.map((k: { url: string; reasons: string[] }) => [path.posix.basename(k.url), k.reasons]).sort(), [
    ['consensus-13.tar.gz', ['last 1', 'newest valid']],
    ['guts-20261110-020000.tar.zst', ['last 2', 'newest valid']],
    ['guts-20261111-020000.tar.zst', ['last 1']],
  ].sort());
  t.equal(res.removed.length, 9);
  t.same(res.removed[0].files.length, 3, 'archive, sidecar and manifest removed together');
  t.same(res.wal.removed, [1, 2, 3, 4, 5, 6, 7, 8, 9].map(seg), 'WAL segments below the oldest kept backup position (10) removed');
  t.same(walKeys(), ['00000002.history', seg(10), seg(11), seg(12)].sort(), 'every segment a kept backup needs for PITR kept, histories kept');
  t.same(keys().filter((k) => k.includes('20261109')), [], 'removed from the store');
  t.equal(keys().length, 8, 'three backups and their sidecars/manifests left');
  const human = cli(['backup', 'prune', where, '--keep-daily', '1'], env);
  t.match(human.stderr, /WAL: no WAL archive/, 'no WAL archive configured: said so');
  t.match(human.stderr, /keep +.*guts-20261111-020000\.tar\.zst .*daily 2026-11-11/);
  t.match(human.stderr, /keep +.*guts-20261110-020000\.tar\.zst .*newest valid/, 'kept and why');
  const none = cli(['backup', 'prune', where, '--keep-within', 'soon'], env);
  t.equal(none.code, 2);
  t.match(none.stderr, /GUTS_INVALID_ARGUMENT/);
  loc.close();
  wal.close();
}

t.test('local directory', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'guts-prune-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const backups = path.join(dir, 'backups');
  const walDir = path.join(dir, 'wal');
  await roundTrip(t, backups, walDir, {}, () => fs.readdirSync(backups).sort(), () => fs.readdirSync(walDir).sort());
});

t.test('S3', async (t) => {
  const s3 = await startS3(['guts-backups', 'guts-wal']);
  t.teardown(() => s3.stop());
  const saved = { ...process.env };
  t.teardown(() => {
    process.env = saved;
  });
  await roundTrip(t, 's3://guts-backups/node-1', 's3://guts-wal/node-1', s3.env, () => storedKeys(s3, 'guts-backups'), () => storedKeys(s3, 'guts-wal').map((k) => k.replace('node-1/', '')));
});
