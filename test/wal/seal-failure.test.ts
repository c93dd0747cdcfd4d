// A segment that cannot be sealed (pending/ unusable, as on a full or broken
// disk) must not take the node down: writes go on, the tail retries, and once
// pending/ works again every acknowledged write is archived exactly once.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { metric, pushObjects, request, sleep, startNode, waitFor } from '../lib/node-proc';
import { occurrences, readArchive, walConfig } from './lib';

t.test('sealing fails for 3 s: the node keeps serving and loses nothing', async (t) => {
  const dir = t.testdir({ archive: {} });
  const archive = path.join(dir, 'archive');
  const data = path.join(dir, 'data');
  const config = walConfig(dir, { archive_command: `cp %p ${archive}/.%f.tmp && mv ${archive}/.%f.tmp ${archive}/%f`, archive_timeout: '100ms' });
  const node = await startNode(data, [], { GUTS_CONFIG: config });
  t.teardown(() => node.stop());
  const acked: string[] = [];
  let n = 0;
  const write = async () => {
    const body = `<write ${n++}>`;
    const r = await pushObjects(node.url, 'a/b', [{ type: 'blob', data: Buffer.from(body) }]);
    t.equal(r.status, 200, `write ${body} acknowledged`);
    acked.push(body);
  };
  for (let i = 0; i < 5; i++) await write();
  await waitFor(async () => metric((await request(node.url + '/metrics')).body.toString(), 'guts_wal_pending_segments') === 0, 10_000, 'first segments archived');

  // pending/ becomes a file: every segment close now fails with ENOTDIR.
  const pending = path.join(data, 'wal', 'pending');
  fs.rmSync(pending, { recursive: true });
  fs.writeFileSync(pending, '');
  const broken = Date.now();
  while (Date.now() - broken < 3000) {
    await write();
    await sleep(50);
  }
  await waitFor(() => /WAL tail or segment close failed \(retrying; nothing is dropped\)/.test(node.stderr()), 10_000, 'the failure logged');
  t.equal(node.child.exitCode, null, 'the node is still running');
  t.equal((await request(node.url + '/health/ready')).status, 200, 'and ready');

  fs.rmSync(pending);
  fs.mkdirSync(pending, { mode: 0o700 });
  for (let i = 0; i < 5; i++) await write();
  await waitFor(
    async () => {
      const m = (await request(node.url + '/metrics')).body.toString();
      return metric(m, 'guts_wal_pending_segments') === 0 && metric(m, 'guts_wal_archive_lag_seconds') === 0;
    },
    20_000,
    'everything archived after pending/ came back',
  );
  t.same(await node.stop(), { code: 0, signal: null }, 'a clean stop');
  t.notMatch(node.stderr(), /Unhandled|at .*\.js:\d+/, 'no crash trace in the log');

  const a = await readArchive(archive);
  for (const body of acked) if (occurrences(a.records, Buffer.from(body)) !== 1) t.fail(`${body} archived ${occurrences(a.records, Buffer.from(body))} times`);
  t.pass(`${acked.length} acknowledged writes each archived exactly once across ${a.segments.length} segments`);
});
