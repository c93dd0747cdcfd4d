// Snapshot ids sort by creation time, also within one second: list order,
// "latest" and --keep-last all rest on it.
import t from 'tap';

import { ID_RE, newSnapshotId, SNAPSHOT_KEY, snapshotKey } from '../../src/backup/repo-format';

t.test('ids of one second sort in the order they were taken', async (t) => {
  const second = Date.parse('2026-11-29T11:35:19Z');
  for (let round = 0; round < 200; round++) {
    const ms = [0, 1, 17, 255, 256, 998, 999];
    const ids = ms.map((m) => newSnapshotId(new Date(second + m)));
    t.same([...ids].sort(), ids, `round ${round}: sorted by time`);
  }
  const id = newSnapshotId(new Date(second + 999));
  t.match(id, /^20261129T113519Z-3e7[0-9a-f]{5}$/, 'the milliseconds lead the suffix');
  t.match(id, ID_RE);
  t.equal(SNAPSHOT_KEY.exec(snapshotKey(id))?.[1], id);
  t.ok(newSnapshotId(new Date(second)) < newSnapshotId(new Date(second + 1000)), 'and seconds still come first');
});
