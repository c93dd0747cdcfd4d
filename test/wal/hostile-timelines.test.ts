// Timeline ids never reused: a fresh archiver state meeting an archive that
// already holds other timelines (defect 3), and concurrent restores claiming
// ids atomically in the archive (defect 4).
import t from 'tap';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { validateConfig } from '../../src/config';
import { Logger } from '../../src/daemon/log';
import { GutsStore } from '../../src/store';
import { newestArchivedTimeline } from '../../src/wal/resume';
import { decodeHistory, historyName, segmentName } from '../../src/wal/segment';
import { BIN } from '../fixtures/cli';
import { baseBackup, SegmentCutter, writeBlobs } from './helpers';

const cfg = (archive: string) => validateConfig({ wal: { archive_dir: archive } }, 'test');

t.test('3: a fresh state asks the archive for every timeline it lists, not only consecutive ids from segment 1', async (t) => {
  const dir = t.testdir({ data: { wal: {} }, pruned: {}, skipped: {} });
  const log = new Logger('error', 'text', () => undefined);
  const data = path.join(dir, 'data');
  // timeline 1 pruned up to segment 5 (retention): its first segment is gone
  fs.writeFileSync(path.join(dir, 'pruned', segmentName(1, 5)), 'x');
  t.equal(await newestArchivedTimeline(data, cfg(path.join(dir, 'pruned')), log), 1);
  // history 2 never archived (a test restore whose claim lost), history 3 and its segments are
  fs.writeFileSync(path.join(dir, 'skipped', segmentName(1, 1)), 'x');
  fs.writeFileSync(path.join(dir, 'skipped', historyName(3)), 'x');
  fs.writeFileSync(path.join(dir, 'skipped', segmentName(3, 4)), 'x');
  t.equal(await newestArchivedTimeline(data, cfg(path.join(dir, 'skipped')), log), 3);
});

t.test('4: three restores at once claim three distinct timelines, each history archived', async (t) => {
  const dir = t.testdir();
  const src = path.join(dir, 'src');
  fs.mkdirSync(path.join(src, 'wal'), { recursive: true });
  const store = await GutsStore.open(src, { create: true });
  const archive = path.join(dir, 'archive');
  const cutter = new SegmentCutter(store, archive);
  await writeBlobs(store, ['a']);
  await cutter.cut();
  const base = await baseBackup(store, cutter, dir, 'base.tar.zst');
  await writeBlobs(store, ['b']);
  await cutter.cut();
  await store.close();
  // a slow archive (history probes take 1 s): the three restores decide on an id well before any of them pushes it
  const config = path.join(dir, 'config.yaml');
  fs.writeFileSync(config, `wal:\n  archive_dir: ${JSON.stringify(archive)}\n  restore_command: ${JSON.stringify(`case %f in *.history) sleep 1;; esac; cp ${archive}/%f %p`)}\n`);
  const run = (i: number) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const c = spawn(process.execPath, [BIN, 'backup', 'restore', base, '--wal', '--target', path.join(dir, `r${i}`), '--json'], { env: { ...process.env, GUTS_CONFIG: config } });
      let stdout = '';
      let stderr = '';
      c.stdout.on('data', (d) => (stdout += d));
      c.stderr.on('data', (d) => (stderr += d));
      c.on('exit', (code) => resolve({ code, stdout, stderr }));
    });
  const outs = await Promise.all([0, 1, 2].map(run));
  const timelines: number[] = [];
  for (const [i, o] of outs.entries()) {
    t.equal(o.code, 0, o.stderr);
    const j = JSON.parse(o.stdout) as { wal: { new_timeline: { timeline: number; history_archived: boolean } } };
    t.equal(j.wal.new_timeline.history_archived, true, `restore ${i}: history archived`);
    timelines.push(j.wal.new_timeline.timeline);
    const state = JSON.parse(fs.readFileSync(path.join(dir, `r${i}`, 'wal', 'state.json'), 'utf8')) as { timeline: number };
    t.equal(state.timeline, j.wal.new_timeline.timeline, 'state.json follows the claimed id');
    t.same(fs.readdirSync(path.join(dir, `r${i}`, 'wal', 'pending')), []);
  }
  t.same([...timelines].sort(), [2, 3, 4]);
  for (const tl of timelines) t.equal(decodeHistory(fs.readFileSync(path.join(archive, historyName(tl))), historyName(tl)).timeline, tl);
});
