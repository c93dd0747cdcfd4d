// Continuous archiving end to end with real processes: a node archiving with
// the guide's cp-based commands, a hot base backup, writes over HTTP, a named
// restore point, kill -9; then point-in-time restores through the CLI, checked
// object by object, and a second history written by a node on the restored store.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { cli, pushObjects, sleep, startNode, stopAtEnd, waitFor } from '../lib/node-proc';

const blob = (label: string) => ({ type: 'blob', data: Buffer.from(`object written ${label}\n`) });

async function write(url: string, labels: string[]): Promise<string[]> {
  const ids: string[] = [];
  for (const l of labels) {
    const r = await pushObjects(url, 'ops/pitr', [blob(l)]);
    if (r.status !== 200) throw new Error(`write ${l}: HTTP ${r.status} ${r.body}`);
    ids.push(...r.json<{ ids: string[] }>().ids);
  }
  return ids;
}

/** Which ids a restored (stopped) data dir holds, through the CLI-independent store API. */
async function present(dataDir: string, ids: string[]): Promise<boolean[]> {
  const { GutsStore } = await import('../../src/store');
  const s = await GutsStore.open(dataDir, { readOnly: true });
  try {
    return await s.hasObjects(ids);
  } finally {
    await s.close();
  }
}

t.test('kill -9, then base + archived WAL: every write acknowledged before archive_timeout, targets exact, a second timeline', async (t) => {
  const dir = t.testdir();
  const data = path.join(dir, 'data');
  const archive = path.join(dir, 'wal-archive');
  fs.mkdirSync(archive);
  const config = path.join(dir, 'config.yaml');
  fs.writeFileSync(config, ''); // a named config must exist
  const env = { GUTS_CONFIG: config };
  // the guide's lines, with cp (PostgreSQL semantics: %f = name in the segment's dir, %p = path)
  for (const [k, v] of [
    ['wal.archive_command', `cp %f ${archive}/%f`],
    ['wal.restore_command', `cp ${archive}/%f %p`],
    ['wal.archive_timeout', '1s'],
  ]) {
    const r = cli(['config', 'set', '--create', k, v], env);
    t.equal(r.code, 0, r.stderr);
  }
  t.equal(cli(['dev', 'seed', '--data-dir', data, '--size', '4MiB', '--seed', '3'], env).code, 0);
  const node = stopAtEnd(t, await startNode(data, [], env));
  const base = path.join(dir, 'base.tar.zst');
  let r = cli(['backup', 'create', '--hot', '--data-dir', data, '--output', base, '--json'], env);
  t.equal(r.code, 0, r.stderr);
  const baseBlobs = (JSON.parse(r.stdout) as { objects: { blob: number } }).objects.blob;

  const set1 = await write(node.url, ['one-a', 'one-b', 'one-c']);
  r = cli(['wal', 'mark', 'before-migration', '--data-dir', data, '--json'], env);
  t.equal(r.code, 0, r.stderr);
  const mark = JSON.parse(r.stdout) as { seq: number };
  const set2 = await write(node.url, ['two-a', 'two-b']);
  await sleep(50);
  const T = new Date().toISOString();
  await sleep(50);
  const set3 = await write(node.url, ['three-a', 'three-b']);
  await sleep(2500); // > archive_timeout: closed and archived
  const late = await write(node.url, ['late']); // acknowledged just before the crash: may be lost (RPO)
  node.child.kill('SIGKILL');
  await node.exited;

  r = cli(['wal', 'verify', '--from', base, '--json'], env);
  t.equal(r.code, 0, r.stderr);
  t.ok(JSON.parse(r.stdout).marks.includes('before-migration'));

  // 1. to the end of the archive, --verify; verify --full clean with exact counts
  const full = path.join(dir, 'restored-end');
  r = cli(['backup', 'restore', base, '--wal', '--target', full, '--verify', '--json'], env);
  t.equal(r.code, 0, r.stderr);
  const rep = JSON.parse(r.stdout);
  t.ok(rep.wal.segments >= 1);
  t.match(rep.wal.reached, { commit_time: String });
  t.match(r.stderr, /replayed \d+ batches/);
  const kept = await present(full, [...set1, ...set2, ...set3]);
  t.same(kept, kept.map(() => true), 'every write acknowledged more than archive_timeout before the kill');
  const lateKept = (await present(full, late))[0];
  const v = cli(['verify', '--data-dir', full, '--full', '--json'], env);
  t.equal(v.code, 0, v.stdout);
  t.equal(JSON.parse(v.stdout).counts.blob, baseBlobs + 7 + (lateKept ? 1 : 0), 'exact object count');
  t.equal(rep.wal.new_timeline.timeline, 2);

  // 2. targets: exactly the writes up to them, object by object
  const at = async (name: string, ...flags: string[]) => {
    const target = path.join(dir, name);
    const res = cli(['backup', 'restore', base, '--wal', '--target', target, '--json', ...flags], env);
    t.equal(res.code, 0, res.stderr);
    return present(target, [...set1, ...set2, ...set3]);
  };
  t.same(await at('at-mark', '--until-mark', 'before-migration'), [true, true, true, false, false, false, false]);
  t.same(await at('at-seq', '--until-seq', String(mark.seq)), [true, true, true, false, false, false, false]);
  t.same(await at('at-time', '--until', T), [true, true, true, true, true, false, false]);

  // 3. a node on the restored store writes a second history (timeline 2) ...
  const node2 = stopAtEnd(t, await startNode(full, [], env));
  const set5 = await write(node2.url, ['five-a', 'five-b']);
  await waitFor(() => JSON.parse(cli(['wal', 'status', '--data-dir', full, '--json'], env).stdout).last_archived?.name?.startsWith('00000002-') ?? false, 10_000, 'timeline 2 archived');
  await node2.stop();
  // ... and a restore from the same base follows it; timeline 1 stays intact
  const again = path.join(dir, 'again');
  r = cli(['backup', 'restore', base, '--wal', '--target', again, '--json'], env);
  t.equal(r.code, 0, r.stderr);
  t.same(JSON.parse(r.stdout).wal.timelines_followed, [1, 2]);
  t.same(await present(again, [...set1, ...set2, ...set3, ...set5]), Array(9).fill(true));
  const old = path.join(dir, 'old');
  r = cli(['backup', 'restore', base, '--wal', '--timeline', '1', '--target', old, '--json'], env);
  t.equal(r.code, 0, r.stderr);
  t.same(await present(old, [...set1, ...set2, ...set3, ...set5]), [...Array(7).fill(true), false, false]);
});
