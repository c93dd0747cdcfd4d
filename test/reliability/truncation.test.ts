// Archives cut short at many points (an interrupted copy to the backup host,
// a full disk there): with the original sidecar beside them every cut is
// detected by verify and refused by restore, which leaves the target as it
// was. Without the sidecar the reader still detects every cut that loses a
// byte of the tar stream up to and including its end-of-archive marker (two
// zero blocks, required since the reader checks for them); only a cut inside
// the zero record padding after the marker, at a 512-byte boundary, cannot be
// seen without the sidecar — it loses nothing, and restoring it gives the
// same files.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { verifyBackup } from '../../src/backup-verify';
import { GutsError } from '../../src/errors';
import { cli } from '../fixtures/cli';
import { archiveRegions, createArchive, FORMATS, prng, runSeed, seedStore, stagingLeft, treeState } from './helpers';

const SEED = runSeed(424242);
const CUTS = 20; // per format

t.test('truncated archives', async (t) => {
  const dir = t.testdir();
  const dataDir = path.join(dir, 'data');
  seedStore(dataDir, '8MiB');
  const rnd = prng(SEED);
  let total = 0;
  let detected = 0;

  for (const format of FORMATS) {
    await t.test(format, async (t) => {
      const file = path.join(dir, `guts.${format}`);
      createArchive(dataDir, file);
      const bytes = fs.readFileSync(file);
      const sidecarText = fs.readFileSync(`${file}.sha256`, 'utf8');
      const target = path.join(dir, `target-${format.replace('.', '-')}`);
      const ok = cli(['backup', 'restore', file, '--target', target]);
      t.equal(ok.status, 0, ok.status ? ok.stderr : 'reference restore');
      const reference = treeState(target);

      // cut points: the edges of every structural region (and one byte on
      // either side), the very start, the last byte, then random points
      const edges = new Set<number>([0, 1, 511, 512, 513, bytes.length - 1]);
      for (const r of archiveRegions(file)) for (const e of [r.start, r.start + 1, r.end - 1]) if (e > 0 && e < bytes.length) edges.add(e);
      const structural = [...edges];
      const cuts = new Set<number>([0, bytes.length - 1]);
      while (cuts.size < CUTS / 2) cuts.add(rnd.pick(structural));
      while (cuts.size < CUTS) cuts.add(1 + rnd.int(bytes.length - 1));

      const cut = path.join(dir, `cut.${format}`);
      let n = 0;
      let withSidecar = 0;
      let contentOnly = 0;
      const harmless: number[] = [];
      for (const len of cuts) {
        fs.writeFileSync(cut, bytes.subarray(0, len));
        fs.writeFileSync(`${cut}.sha256`, sidecarText);
        n++;
        const v = await verifyBackup({ file: cut, threads: 2 });
        if (v.status === 'INVALID') withSidecar++;
        else t.fail(`${format}: cut at ${len} of ${bytes.length} not detected with the sidecar`);
        fs.rmSync(`${cut}.sha256`);
        // without the sidecar, a cut inside the first bytes leaves no trace of a backup: GUTS_NOT_ARCHIVE
        const c = await verifyBackup({ file: cut, threads: 2 }).catch((e: GutsError) => {
          if (e.code !== 'GUTS_NOT_ARCHIVE') throw e;
          return { status: 'INVALID' };
        });
        if (c.status === 'INVALID') contentOnly++;
        else harmless.push(len);
      }
      total += n;
      detected += withSidecar;
      t.comment(`${format}: truncations detected: ${withSidecar}/${n} (without the sidecar: ${contentOnly}/${n})`);
      t.equal(withSidecar, n);
      for (const len of harmless) {
        // only zeros after the end-of-archive marker were lost: the same files come back
        fs.writeFileSync(cut, bytes.subarray(0, len));
        const other = path.join(dir, 'harmless');
        const r = cli(['backup', 'restore', cut, '--target', other]);
        t.equal(r.status, 0, r.status ? r.stderr : `cut at ${len} of ${bytes.length} lost only trailer padding`);
        t.same(treeState(other), reference);
        fs.rmSync(other, { recursive: true, force: true });
      }

      // restore refuses cut archives (with their sidecar) and leaves the target alone
      const sample = [...cuts].slice(0, 4);
      let refused = 0;
      for (const len of sample) {
        fs.writeFileSync(cut, bytes.subarray(0, len));
        fs.writeFileSync(`${cut}.sha256`, sidecarText);
        const r = cli(['backup', 'restore', cut, '--target', target, '--force']);
        if (r.status === 1 && /GUTS_CORRUPT/.test(r.stderr)) refused++;
        else t.fail(`restore of cut at ${len}: exit ${r.status} ${r.stderr}`);
        t.same(treeState(target), reference, 'target untouched');
        t.same(stagingLeft(dir), [], 'staging dir removed');
      }
      t.equal(refused, sample.length, `restore refused ${refused}/${sample.length} cut archives`);
    });
  }
  t.comment(`truncations detected: ${detected}/${total}`);
  t.equal(detected, total);
  t.ok(total >= 50, 'at least 50 cut points');
});

t.test('a plain tar cut inside or right before its end-of-archive marker is detected without a sidecar', async (t) => {
  // regression: such a cut lost no file data, so nothing noticed it
  const dir = t.testdir();
  const dataDir = path.join(dir, 'data');
  seedStore(dataDir, '1MiB');
  const file = path.join(dir, 'g.tar');
  createArchive(dataDir, file);
  fs.rmSync(`${file}.sha256`);
  const bytes = fs.readFileSync(file);
  const trailer = archiveRegions(file).find((r) => r.what === 'tar end-of-archive')!;
  for (const len of [trailer.start, trailer.start + 512, trailer.start + 1000, bytes.length - 1]) {
    fs.writeFileSync(file, bytes.subarray(0, len));
    const v = await verifyBackup({ file });
    t.equal(v.status, 'INVALID', `cut at ${len} (trailer starts at ${trailer.start})`);
    t.match(v.problems, [{ code: 'GUTS_CORRUPT', message: /archive truncated/ }]);
  }
});
