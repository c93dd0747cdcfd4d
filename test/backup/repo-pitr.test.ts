// Point-in-time restore from a backup repository snapshot: the snapshot is
// the base (its manifest carries the WAL position), the archived WAL is
// replayed on the staged store exactly as after an archive base.
import t from 'tap';
import * as path from 'node:path';

import { createRepoSnapshot } from '../../src/backup/repo-create';
import { repoRestoreSource } from '../../src/backup/repo-read';
import { validateConfig } from '../../src/config';
import { LocalLocation } from '../../src/location';
import { GutsStore } from '../../src/store';
import { restorePointInTime } from '../../src/wal/pitr';
import { newWalState, writeWalState } from '../../src/wal/state';
import { present, SegmentCutter, writeBlobs } from '../wal/helpers';
import * as fs from 'node:fs';

t.test('PITR from a repository snapshot replays the archived WAL after it', async (t) => {
  const dir = t.testdir();
  const src = path.join(dir, 'src');
  fs.mkdirSync(path.join(src, 'wal'), { recursive: true }); // archiving on: WAL kept
  const store = await GutsStore.open(src, { create: true });
  const archive = path.join(dir, 'archive');
  const cutter = new SegmentCutter(store, archive);
  const A = await writeBlobs(store, ['a1', 'a2']);
  await store.putBlocks([{ height: 0, data: Buffer.from('genesis') }], 0);
  await cutter.cut();
  // the archiver's position, as a node keeps it in wal/state.json
  writeWalState(src, { ...newWalState(cutter.state.db_next_seq, cutter.state.consensus_next_seq), timeline: cutter.state.timeline, next_segment: cutter.state.next_segment, prev_checksum: cutter.state.prev_checksum });
  const loc = new LocalLocation(path.join(dir, 'repo'));
  const snap = await createRepoSnapshot({ dataDir: src, location: loc, store });
  t.same(snap.wal, { timeline: 1, segment: cutter.state.next_segment }, 'the snapshot records the WAL position');
  const B = await writeBlobs(store, ['b1', 'b2', 'b3']);
  await cutter.cut();
  const final = await store.counts();
  await store.close();

  const target = path.join(dir, 'restored');
  const rs = await repoRestoreSource(loc, 'latest');
  const r = await restorePointInTime({ file: rs.name, extract: rs.extract, target, config: validateConfig({ wal: { archive_dir: archive } }, 'test'), until: null, verify: true });
  t.equal(r.format, 'repository');
  t.equal(r.verified, true, 'full object check against the replayed counts');
  t.same(await present(target, [...A, ...B]), [...A, ...B].map(() => true), 'the base and every write after it');
  t.equal(r.objects.blob, final.blob, 'counts as the source');
  t.ok(r.wal && r.wal.batches >= 3, `replayed ${r.wal?.batches} batches`);
});
