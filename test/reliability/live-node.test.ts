// A running node (`guts-node serve`): restoring into its data dir is refused
// (exit 3) and changes nothing; `verify --data-dir` on it is refused (exit 3);
// hot backups taken while a writer pushes objects over HTTP each restore to a
// store that passes `verify --full` with exact counts equal to the manifest's.
import t from 'tap';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { verifyBackup } from '../../src/backup-verify';
import { cli } from '../fixtures/cli';
import { pushObjects, startNode, waitFor } from '../lib/node-proc';
import { createArchive, seedStore, stagingLeft } from './helpers';

const HOT_BACKUPS = 3;

t.test('a running node', async (t) => {
  const dir = t.testdir({ out: {} });
  const dataDir = path.join(dir, 'data');
  seedStore(dataDir, '8MiB');
  const archive = path.join(dir, 'cold.tar.zst');
  createArchive(dataDir, archive);
  const node = await startNode(dataDir);
  t.teardown(() => node.stop());

  await t.test('restore into its data dir is refused', async (t) => {
    const listing = () => fs.readdirSync(path.join(dataDir, 'db')).filter((n) => n.endsWith('.sst')).sort();
    const ssts = listing();
    const ino = fs.statSync(dataDir).ino;
    const r = cli(['backup', 'restore', archive, '--target', dataDir, '--force']);
    t.equal(r.status, 3, 'exit 3');
    t.match(r.stderr, /^guts-node: GUTS_LOCKED: /);
    t.equal(fs.statSync(dataDir).ino, ino, 'the data dir was not swapped');
    t.same(listing(), ssts, 'its SST files are the same');
    t.same(stagingLeft(dir), [], 'no staging dir');
    const h = await fetch(`${node.url}/health/ready`);
    t.equal(h.status, 200, 'the node is still serving');
  });

  await t.test('verify --data-dir on it is refused', async (t) => {
    for (const extra of [[], ['--full']]) {
      const r = cli(['verify', '--data-dir', dataDir, ...extra]);
      t.equal(r.status, 3, `verify ${extra.join(' ')}: exit 3`);
      t.match(r.stderr, /GUTS_LOCKED/);
    }
  });

  await t.test('hot backups under write load restore to exact, verified stores', async (t) => {
    let stop = false;
    let pushed = 0;
    let failed = 0;
    const writer = async (w: number) => {
      for (let n = 0; !stop; n++) {
        const objects = Array.from({ length: 8 }, (_, i) => ({ type: 'blob', data: Buffer.concat([Buffer.from(`writer ${w} batch ${n} #${i}\n`), crypto.randomBytes(2000)]) }));
        const r = await pushObjects(node.url, `load/w${w}`, objects);
        if (r.status === 200) pushed += objects.length;
        else failed++;
      }
    };
    const writers = [0, 1].map(writer);
    let exact = 0;
    try {
      await waitFor(() => pushed > 50, 10_000, 'writes flowing');
      for (let i = 0; i < HOT_BACKUPS; i++) {
        const before = pushed;
        const out = path.join(dir, 'out', `hot-${i}.tar.zst`);
        // the default (idle priority, paced), unpaced, and --foreground: all consistent
        const mode = [
          { flags: [], priority: 'idle', share: 50 },
          { flags: ['--cpu-share', '100'], priority: 'idle', share: 100 },
          { flags: ['--foreground'], priority: 'normal', share: 100 },
        ][i % 3];
        const c = cli(['--data-dir', dataDir, 'backup', 'create', '--hot', ...mode.flags, '--output', out, '--json']);
        t.equal(c.status, 0, c.status ? c.stderr : `hot backup ${i}`);
        const created = JSON.parse(c.stdout);
        t.equal(created.kind, 'hot');
        t.equal(created.priority, mode.priority, `priority with [${mode.flags.join(' ')}]`);
        t.equal(created.cpu_share, mode.share, `cpu share with [${mode.flags.join(' ')}]`);
        await waitFor(() => pushed > before + 16, 10_000, 'writes continued during the backup');
        const v = await verifyBackup({ file: out });
        t.equal(v.status, 'VALID', `hot backup ${i} verifies`);

        const target = path.join(dir, `restored-${i}`);
        const r = cli(['backup', 'restore', out, '--target', target, '--verify']);
        t.equal(r.status, 0, r.status ? r.stderr : 'restored with --verify');
        const f = cli(['verify', '--data-dir', target, '--full', '--json']);
        t.equal(f.status, 0, f.status ? f.stdout + f.stderr : 'verify --full passes');
        const report = JSON.parse(f.stdout);
        const counts = { commit: report.counts.commit, tree: report.counts.tree, blob: report.counts.blob, tag: report.counts.tag };
        t.same(counts, created.objects, `restored counts equal the manifest's (${JSON.stringify(created.objects)})`);
        t.equal(report.counts.repositories, created.repositories, 'repository count equals the manifest');
        if (f.status === 0 && JSON.stringify(counts) === JSON.stringify(created.objects) && report.counts.repositories === created.repositories) exact++;
        fs.rmSync(target, { recursive: true });
      }
    } finally {
      stop = true;
      await Promise.all(writers);
    }
    t.equal(failed, 0, 'no write failed during the hot backups');
    t.comment(`hot backups under write load restored with exact counts: ${exact}/${HOT_BACKUPS} (${pushed} objects pushed meanwhile)`);
    t.equal(exact, HOT_BACKUPS);
  });
});
