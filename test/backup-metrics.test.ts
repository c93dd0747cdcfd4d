// The guide's GutsBackupMissing alert (time() - guts_last_backup_timestamp >
// 86400) must see full backups only: hourly consensus-only backups get their
// own series, {kind="consensus-only"}, and last-backup.json keeps one record
// per kind. Checked through a real node's /metrics, for backups recorded by
// the CLI alone (no node) and through the running node.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { dataDirLayout } from '../src/store';
import { cli } from './fixtures/cli';
import { metric, request, startNode } from './lib/node-proc';
import { seedStore } from './reliability/helpers';

interface Made {
  created: string;
  size_bytes: number;
  kind: string;
}

function backup(dataDir: string, out: string, extra: string[] = []): Made {
  const r = cli(['--data-dir', dataDir, 'backup', 'create', '--output', out, '--json', ...extra]);
  if (r.status !== 0) throw new Error(`backup create failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Made;
}

const unix = (iso: string) => Math.floor(Date.parse(iso) / 1000);

t.test('a consensus-only backup does not reset the full backup series', async (t) => {
  const dir = t.testdir({ out: {} });
  const dataDir = path.join(dir, 'data');
  seedStore(dataDir, '4MiB', 1);

  // without a node: the CLI writes last-backup.json itself
  const full = backup(dataDir, path.join(dir, 'out', 'full.tar.zst'));
  const cons = backup(dataDir, path.join(dir, 'out', 'consensus-01.tar.gz'), ['--consensus-only']);
  t.ok(cons.size_bytes < full.size_bytes / 10, 'the consensus-only archive is much smaller: the sizes tell the series apart');
  const records = JSON.parse(fs.readFileSync(dataDirLayout(dataDir).lastBackup, 'utf8'));
  t.same(Object.keys(records).sort(), ['consensus_only', 'full'], 'one record per kind');
  t.equal(records.full.size_bytes, full.size_bytes);
  t.equal(records.consensus_only.kind, 'consensus-only');

  const node = await startNode(dataDir, [], { GUTS_CONFIG: '/dev/null' });
  t.teardown(() => node.stop());
  let m = (await request(`${node.url}/metrics`)).body.toString();
  t.equal(metric(m, 'guts_last_backup_timestamp'), unix(full.created), 'unlabelled: the full backup');
  t.equal(metric(m, 'guts_backup_size_bytes'), full.size_bytes);
  t.equal(metric(m, 'guts_last_backup_timestamp{kind="consensus-only"}'), unix(cons.created), 'consensus-only: its own series');
  t.equal(metric(m, 'guts_backup_size_bytes{kind="consensus-only"}'), cons.size_bytes);
  t.equal((m.match(/^# TYPE guts_last_backup_timestamp /gm) ?? []).length, 1, 'one family, two series');

  // through the running node: another consensus-only backup leaves the full series alone
  const cons2 = backup(dataDir, path.join(dir, 'out', 'consensus-02.tar.gz'), ['--consensus-only']);
  m = (await request(`${node.url}/metrics`)).body.toString();
  t.equal(metric(m, 'guts_backup_size_bytes'), full.size_bytes, 'still the full backup');
  t.equal(metric(m, 'guts_last_backup_timestamp'), unix(full.created));
  t.equal(metric(m, 'guts_backup_size_bytes{kind="consensus-only"}'), cons2.size_bytes);
  t.equal(metric(m, 'guts_last_backup_timestamp{kind="consensus-only"}'), unix(cons2.created));

  // a hot backup is a full one for the alert
  const hot = backup(dataDir, path.join(dir, 'out', 'hot.tar.zst'), ['--hot']);
  t.equal(hot.kind, 'hot');
  m = (await request(`${node.url}/metrics`)).body.toString();
  t.equal(metric(m, 'guts_backup_size_bytes'), hot.size_bytes, 'unlabelled: now the hot backup');
  t.equal(metric(m, 'guts_last_backup_timestamp{kind="consensus-only"}'), unix(cons2.created), 'consensus-only kept');

  const status = JSON.parse(cli(['--data-dir', dataDir, 'status', '--json']).stdout);
  t.equal(status.last_backup.size_bytes, hot.size_bytes, 'status: last (full or hot) backup');
  t.equal(status.last_consensus_backup.size_bytes, cons2.size_bytes, 'status: last consensus-only backup');
  const text = cli(['--data-dir', dataDir, 'status']).stdout;
  t.match(text, /^Last backup: .*, hot, /m);
  t.match(text, /^Last consensus-only backup: .*, consensus-only, /m);
});

t.test('only consensus-only backups: the full series stays 0 and the alert fires (/metrics and the textfile)', async (t) => {
  const dir = t.testdir({ out: {} });
  const dataDir = path.join(dir, 'data');
  const textfile = path.join(dir, 'guts_backup.prom');
  const config = path.join(dir, 'config.yaml');
  fs.writeFileSync(config, `metrics:\n  textfile: ${JSON.stringify(textfile)}\n`);
  seedStore(dataDir, '1MiB', 3);
  const node = await startNode(dataDir, [], { GUTS_CONFIG: config });
  t.teardown(() => node.stop());
  // through the node: it records the backup and writes the textfile
  const r = cli(['--config', config, '--data-dir', dataDir, 'backup', 'create', '--consensus-only', '--output', path.join(dir, 'out', 'consensus-01.tar.gz'), '--json']);
  t.equal(r.status, 0, r.stderr);
  const cons = JSON.parse(r.stdout) as Made;
  for (const [where, text] of [
    ['/metrics', (await request(`${node.url}/metrics`)).body.toString()],
    ['textfile', fs.readFileSync(textfile, 'utf8')],
  ]) {
    t.equal(metric(text, 'guts_last_backup_timestamp'), 0, `${where}: no full backup recorded: time() - 0 > 86400 fires`);
    t.equal(metric(text, 'guts_last_backup_timestamp{kind="consensus-only"}'), unix(cons.created), `${where}: the consensus-only series`);
    t.equal(metric(text, 'guts_backup_size_bytes{kind="consensus-only"}'), cons.size_bytes);
  }
});

t.test('a last-backup.json from before per-kind records is still read', async (t) => {
  const dir = t.testdir();
  const dataDir = path.join(dir, 'data');
  seedStore(dataDir, '1MiB', 3);
  fs.writeFileSync(dataDirLayout(dataDir).lastBackup, JSON.stringify({ file: '/b/x.tar.zst', size_bytes: 99, created: '2026-01-02T03:04:05Z', kind: 'full' }));
  const node = await startNode(dataDir, [], { GUTS_CONFIG: '/dev/null' });
  t.teardown(() => node.stop());
  const m = (await request(`${node.url}/metrics`)).body.toString();
  t.equal(metric(m, 'guts_last_backup_timestamp'), unix('2026-01-02T03:04:05Z'));
  t.equal(metric(m, 'guts_last_backup_timestamp{kind="consensus-only"}'), undefined, 'no consensus-only series without such a backup');
});
