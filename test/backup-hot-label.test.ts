// `backup create --hot` says which path it took and labels the backup by what
// it is (issue 11 item 14): through a running node it is "hot"; with no node
// it is a direct checkpoint of the stopped store, "full" in the manifest, the
// --json result and last-backup.json.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { cli } from './fixtures/cli';
import { startNode } from './lib/node-proc';

function manifestKind(archive: string): string {
  const text = execFileSync('tar', ['-I', 'zstd', '-xOf', archive, 'MANIFEST.json'], { encoding: 'utf8' });
  return (JSON.parse(text) as { kind: string }).kind;
}

t.test('--hot with no node: a direct checkpoint, said on stderr and labelled "full"', async (t) => {
  const dir = t.testdir();
  const D = path.join(dir, 'data');
  t.equal(cli(['--data-dir', D, 'dev', 'seed', '--size', '4MiB']).status, 0);
  const out = path.join(dir, 'cold.tar.zst');
  const r = cli(['--data-dir', D, 'backup', 'create', '--hot', '--output', out, '--json']);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stderr, /--hot: no node answers on .*admin\.sock, so this is a direct checkpoint of the stopped store \(kind "full", not "hot"\)/);
  const res = JSON.parse(r.stdout);
  t.equal(res.kind, 'full');
  t.equal(res.via, 'store');
  t.equal(manifestKind(out), 'full');
  t.equal(JSON.parse(fs.readFileSync(path.join(D, 'last-backup.json'), 'utf8')).full.kind, 'full');
  const v = cli(['backup', 'verify', out]);
  t.equal(v.status, 0, v.stdout + v.stderr);

  // the human summary says it too
  const human = cli(['--data-dir', D, 'backup', 'create', '--hot', '--output', path.join(dir, 'cold2.tar.zst')]);
  t.equal(human.status, 0, human.stderr);
  t.match(human.stderr, /direct checkpoint of the stopped store/);
  t.match(human.stderr, /Backup created: .*, full, /);
});

t.test('--hot through a running node stays "hot" and says so', async (t) => {
  const dir = t.testdir();
  const D = path.join(dir, 'data');
  t.equal(cli(['--data-dir', D, 'dev', 'seed', '--size', '4MiB']).status, 0);
  const node = await startNode(D, [], { GUTS_CONFIG: '/dev/null' });
  t.teardown(() => node.stop());
  const out = path.join(dir, 'hot.tar.zst');
  const r = cli(['--data-dir', D, 'backup', 'create', '--hot', '--output', out, '--json']);
  t.equal(r.status, 0, r.stderr);
  t.notMatch(r.stderr, /direct checkpoint/);
  t.match(r.stderr, /--hot: checkpoint through the running node \(process \d+, .*admin\.sock\)/);
  const res = JSON.parse(r.stdout);
  t.equal(res.kind, 'hot');
  t.equal(res.via, 'node');
  t.equal(manifestKind(out), 'hot');
  const s = JSON.parse(cli(['--data-dir', D, 'status', '--json']).stdout);
  t.equal(s.last_backup.kind, 'hot', 'recorded by the node as hot');
  await node.stop();
});
