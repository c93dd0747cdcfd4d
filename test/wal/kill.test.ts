// kill -9 of the node while segments are being archived, repeatedly: the
// archive afterwards holds every acknowledged write exactly once, and the
// segments of both stores chain without a hole or an overlap.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { metric, pushObjects, request, sleep, startNode, stopAtEnd, waitFor } from '../lib/node-proc';
import { occurrences, readArchive, walConfig } from './lib';

const ROUNDS = 10;

t.test(`kill -9 while archiving, ${ROUNDS} times: every acknowledged write archived exactly once`, async (t) => {
  const dir = t.testdir({ archive: {} });
  const archive = path.join(dir, 'archive');
  const data = path.join(dir, 'data');
  // A slow command, so kills land while one is running.
  const config = walConfig(dir, { archive_command: `sleep 0.1; cp %p ${archive}/.%f.tmp && mv ${archive}/.%f.tmp ${archive}/%f`, archive_timeout: '150ms' });
  const env = { GUTS_CONFIG: config };
  const acked: string[] = [];
  let n = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const node = stopAtEnd(t, await startNode(data, [], env));
    const until = Date.now() + 300 + Math.floor(Math.random() * 500);
    while (Date.now() < until) {
      const body = `<round ${round} write ${n++}>`;
      const r = await pushObjects(node.url, 'a/b', [{ type: 'blob', data: Buffer.from(body) }]); // the node is up until the kill below: a refused connection is a crash
      if (r.status === 200) acked.push(body);
      if (n % 7 === 0) await request(`${node.url}/api/repos/a/b/refs`); // reads between writes
    }
    node.child.kill('SIGKILL');
    await node.exited;
  }
  // A last start archives what the kills left pending; then a clean stop.
  const node = stopAtEnd(t, await startNode(data, [], env));
  await pushObjects(node.url, 'a/b', [{ type: 'blob', data: Buffer.from('<final>') }]);
  await waitFor(async () => {
    const m = (await request(node.url + '/metrics')).body.toString();
    return metric(m, 'guts_wal_pending_segments') === 0 && metric(m, 'guts_wal_archive_lag_seconds') === 0;
  }, 30_000, 'everything archived');
  t.equal(metric((await request(node.url + '/metrics')).body.toString(), 'guts_wal_timeline_switches_total'), 0, 'no continuity gap');
  t.same(await node.stop(), { code: 0, signal: null });
  await sleep(300); // orphaned commands of killed nodes finish

  const a = await readArchive(archive);
  t.ok(a.segments.length >= ROUNDS, `${a.segments.length} segments chained, every checksum good`);
  t.equal(a.segments[0].db.first, 1);
  t.equal(a.segments[0].consensus.first, 1);
  let missing = 0;
  let duplicated = 0;
  for (const body of acked) {
    const k = occurrences(a.records, Buffer.from(body));
    if (k === 0) missing++;
    if (k > 1) duplicated++;
  }
  t.equal(missing, 0, `none of ${acked.length} acknowledged writes missing`);
  t.equal(duplicated, 0, 'none archived twice');
  t.equal(occurrences(a.records, Buffer.from('<final>')), 1);
  const names = fs.readdirSync(archive).filter((f) => !f.endsWith('.gwal'));
  t.same(names, [], 'no stray files in the archive');
});
