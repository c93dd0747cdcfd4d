// Repository lock waits (--lock-wait): a create started while a prune holds
// the exclusive lock waits for it and completes; a prune waits for a running
// create; --lock-wait 0 fails at once with GUTS_REPO_LOCKED (exit 3); a lock
// whose process dies during the wait is taken over. Real processes, real
// repository; every step is keyed to the waiting note on stderr, not to sleeps.
import t from 'tap';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { acquireLock } from '../../src/backup/repo-lock';
import { openLocation } from '../../src/location';
import { cli, grow, json, spawnCli, tmp } from '../lib/repo-cli';

const WAITING = /is locked: .* waiting up to \d+ s for it \(--lock-wait\)/;

t.test('create waits for a prune, prune waits for a create, --lock-wait 0 fails at once', async (t) => {
  const dir = tmp(t);
  const repo = path.join(dir, 'repo');
  const data = path.join(dir, 'data');
  await grow(data, 3e5, 'w');
  const first = json(['--data-dir', data, 'backup', 'create', '--repo', repo]);
  t.equal(first.code, 0, `a first snapshot: ${first.stderr}`);
  const loc = openLocation(repo);
  t.teardown(() => loc.close());

  // the exclusive lock of a prune (this process: alive, same host)
  const prune = await acquireLock(loc, 'prune');
  const t0 = Date.now();
  const now = json(['--data-dir', data, 'backup', 'create', '--repo', repo, '--lock-wait', '0']);
  t.equal(now.code, 3, '--lock-wait 0: exit 3');
  t.equal(now.body.error?.code, 'GUTS_REPO_LOCKED', 'with GUTS_REPO_LOCKED');
  t.notMatch(now.stderr, WAITING, 'no waiting note');
  t.ok(Date.now() - t0 < 30_000, 'at once');
  const short = json(['--data-dir', data, 'backup', 'create', '--repo', repo, '--lock-wait', '1']);
  t.equal(short.code, 3, '--lock-wait 1 while the prune keeps its lock: exit 3 after the wait');
  t.equal(short.body.error?.code, 'GUTS_REPO_LOCKED');
  t.match(short.body.error?.message, /still locked after waiting 1 s/, 'the error says it waited');
  t.match(short.stderr, WAITING, 'the waiting note on stderr');

  await grow(data, 2e4, 'w2');
  const c = spawnCli(['--data-dir', data, 'backup', 'create', '--repo', repo, '--lock-wait', '120', '--json']);
  await c.untilStderr(WAITING);
  t.equal(c.child.exitCode, null, 'the create waits while the prune holds the lock');
  t.equal(fs.readdirSync(path.join(repo, 'snapshots')).filter((n) => n.endsWith('.json')).length, 1, 'no snapshot written meanwhile');
  t.same(fs.readdirSync(path.join(repo, 'locks')).filter((n) => n.startsWith('create-')), [], 'and no create lock left behind by its polls');
  const released = Date.now();
  await prune.release();
  t.equal(await c.exited, 0, `the create completes after the prune: ${c.stderr()}`);
  const body = JSON.parse(c.stdout());
  t.ok(body.snapshot, '--json stdout is one JSON object (the note went to stderr)');
  t.ok(Date.parse(body.created) >= Math.floor(released / 1000) * 1000, 'its snapshot was taken after the prune let go');
  t.equal(json(['backup', 'list', '--repo', repo]).body.snapshots.length, 2, 'two snapshots');

  // prune waits for a running create (shared lock of a live process)
  const create = await acquireLock(loc, 'create');
  const p = spawnCli(['backup', 'prune', '--repo', repo, '--keep-last', '1', '--lock-wait', '120', '--json']);
  await p.untilStderr(WAITING);
  t.equal(p.child.exitCode, null, 'the prune waits while a create holds its lock');
  t.equal(json(['backup', 'list', '--repo', repo]).body.snapshots.length, 2, 'nothing removed meanwhile');
  const p0 = json(['backup', 'prune', '--repo', repo, '--keep-last', '1', '--lock-wait', '0']);
  t.equal(p0.code, 3, 'prune --lock-wait 0: exit 3');
  t.equal(p0.body.error?.code, 'GUTS_REPO_LOCKED');
  await create.release();
  t.equal(await p.exited, 0, `the prune runs once the create finished: ${p.stderr()}`);
  t.equal(JSON.parse(p.stdout()).removed.length, 1, 'and removes the older snapshot');
  t.equal(json(['backup', 'verify', '--repo', repo]).body.status, 'VALID', 'the kept snapshot verifies');

  // usage: --lock-wait belongs to --repo
  const u = cli(['--data-dir', data, 'backup', 'create', '--output', path.join(dir, 'a.tar.zst'), '--lock-wait', '5']);
  t.equal(u.code, 2, '--lock-wait without --repo: usage error');
  t.equal(cli(['backup', 'prune', '--repo', repo, '--lock-wait', '-1']).code, 2, 'negative --lock-wait: usage error');
  t.match(cli(['backup', 'create', '--help']).stdout, /--lock-wait <seconds>/, 'create --help shows --lock-wait');
  t.match(cli(['backup', 'prune', '--help']).stdout, /--lock-wait <seconds>/, 'prune --help shows --lock-wait');
});

t.test('a lock whose process dies during the wait is taken over (stale), with the default wait', async (t) => {
  const dir = tmp(t);
  const repo = path.join(dir, 'repo');
  const data = path.join(dir, 'data');
  await grow(data, 2e5, 's');
  t.equal(cli(['--data-dir', data, 'backup', 'create', '--repo', repo]).code, 0, 'a first snapshot');
  // a "prune" in another process on this host: its lock names its pid
  const holder = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1e6)'], { stdio: 'ignore' });
  t.teardown(() => holder.kill('SIGKILL'));
  const key = `prune-${os.hostname().replace(/[^A-Za-z0-9.-]/g, '_')}-${holder.pid}-0badf00d.json`;
  const stamp = new Date().toISOString();
  fs.writeFileSync(path.join(repo, 'locks', key), JSON.stringify({ kind: 'prune', hostname: os.hostname(), pid: holder.pid, created: stamp, refreshed: stamp }) + '\n');
  const c = spawnCli(['--data-dir', data, 'backup', 'create', '--repo', repo]); // default --lock-wait (300 s)
  await c.untilStderr(WAITING);
  t.match(c.stderr(), /waiting up to 300 s/, 'the default wait is 300 s');
  t.ok(fs.existsSync(path.join(repo, 'locks', key)), 'the live lock stays while its process runs');
  holder.kill('SIGKILL');
  await new Promise((r) => holder.once('exit', r));
  const t0 = Date.now();
  t.equal(await c.exited, 0, `the create takes the stale lock over: ${c.stderr()}`);
  t.ok(Date.now() - t0 < 60_000, 'within a poll or a few');
  t.notOk(fs.existsSync(path.join(repo, 'locks', key)), 'the stale lock was removed');
  t.same(fs.readdirSync(path.join(repo, 'locks')), [], 'no lock left');
  t.equal(json(['backup', 'list', '--repo', repo]).body.snapshots.length, 2, 'the second snapshot is there');

  // a dead process's lock found at the start is taken over at once, even with --lock-wait 0
  fs.writeFileSync(path.join(repo, 'locks', key), JSON.stringify({ kind: 'prune', hostname: os.hostname(), pid: holder.pid, created: stamp, refreshed: stamp }) + '\n');
  const z = json(['--data-dir', data, 'backup', 'create', '--repo', repo, '--lock-wait', '0']);
  t.equal(z.code, 0, `--lock-wait 0 with a stale lock: ${z.stderr}`);
  t.notOk(fs.existsSync(path.join(repo, 'locks', key)), 'stale lock removed');
});
