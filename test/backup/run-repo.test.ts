// backup run with a backup repository (backup.repo / --repo), end to end: a
// live node under writes, snapshots through it (hot), verify, prune by the
// config's keep rules, metrics to a real Pushgateway-like receiver, a
// node_exporter textfile and the node's own /metrics; the lock wait against a
// prune holding the repository; the same on S3 (s3rver).
import t from 'tap';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';

import { acquireLock } from '../../src/backup/repo-lock';
import { openLocation } from '../../src/location';
import { BIN, metric, pushObjects, request, startNode } from '../lib/node-proc';
import { startS3, storedKeys } from '../lib/s3';

/** A real HTTP receiver on 127.0.0.1 (the Pushgateway's POST /metrics/job/...). */
async function receiver() {
  const got: Array<{ url: string; body: string }> = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      got.push({ url: req.url!, body });
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return { url, got, close: () => new Promise<void>((r) => server.close(() => r())) };
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'guts-run-repo-'));
const dataDir = path.join(dir, 'data');
const config = path.join(dir, 'config.yaml');
const repo = path.join(dir, 'repo');
const textfile = path.join(dir, 'textfile', 'guts_backup.prom');
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
  body: Record<string, any>;
}

function start(args: string[], env: NodeJS.ProcessEnv = {}) {
  const c = spawn(process.execPath, [BIN, '--data-dir', dataDir, ...args], { env: { ...process.env, GUTS_CONFIG: config, ...env } });
  let stdout = '';
  let stderr = '';
  const seen: Array<() => void> = [];
  c.stdout.on('data', (d) => (stdout += d));
  c.stderr.on('data', (d) => {
    stderr += d;
    seen.forEach((f) => f());
  });
  const done = new Promise<Ran>((resolve) =>
    c.on('close', (code) => {
      let body: Record<string, any> = {};
      try {
        body = JSON.parse(stdout);
      } catch {
        /* not JSON: the caller's assertions fail with stderr */
      }
      resolve({ code, stdout, stderr, body });
    }),
  );
  const untilStderr = (re: RegExp) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${re} within 90 s: ${stderr}`)), 90_000);
      const check = () => {
        if (re.test(stderr)) {
          clearTimeout(timer);
          resolve();
        }
      };
      seen.push(check);
      void done.then(() => {
        clearTimeout(timer);
        if (re.test(stderr)) resolve();
        else reject(new Error(`exited before ${re}: ${stderr}`));
      });
      check();
    });
  return { child: c, done, untilStderr };
}
const cli = (args: string[], env: NodeJS.ProcessEnv = {}) => start(args, env).done;

t.test('backup run with backup.repo', async (t) => {
  fs.writeFileSync(config, '');
  const seeded = await cli(['dev', 'seed', '--size', '4MiB']);
  t.equal(seeded.code, 0, seeded.stderr);
  const push = await receiver();
  t.teardown(() => push.close());
  fs.mkdirSync(path.dirname(textfile));
  fs.writeFileSync(config, `backup:\n  repo: ${repo}\n  keep_last: 2\n  pushgateway: ${push.url}\n  textfile: ${textfile}\n`);
  const node = await startNode(dataDir, [], { GUTS_CONFIG: config });
  t.teardown(() => node.stop());

  let writing = true;
  let writes = 0;
  const writer = (async () => {
    while (writing) {
      const r = await pushObjects(node.url, 'alice/live', [{ type: 'blob', data: Buffer.from(`blob ${writes} ${Date.now()}\n`) }]);
      if (r.status === 200) writes++;
    }
  })();

  // three scheduled runs, config only (the systemd unit's command line)
  const runs: Ran[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await cli(['backup', 'run', '--json']);
    t.equal(r.code, 0, `run ${i}: ${r.stderr}`);
    runs.push(r);
  }
  const [r1, r2, r3] = runs.map((r) => r.body);
  t.equal(r1.status, 'success');
  t.equal(r1.kind, 'hot', 'a node runs: a hot snapshot through it');
  t.same(r1.steps.map((s: any) => [s.step, s.status]), [['create', 'ok'], ['verify', 'ok'], ['upload', 'skipped'], ['prune', 'ok'], ['metrics', 'ok']]);
  for (const s of ['create', 'verify', 'upload', 'prune', 'metrics']) t.match(runs[0].stderr, new RegExp(`^\\[[\\dT:Z-]+\\] ${s}: `, 'm'), `one log line for ${s}`);
  t.match(r1.steps[0].message, /^snapshot \S+ in /, 'create made a snapshot');
  t.match(r1.steps[1].message, /VALID \(\d+ objects/, 'verify read the snapshot back');
  t.equal(r1.file, `${repo}#${r1.snapshot.id}`, 'file names the repository and the snapshot');
  t.equal(r1.location, repo, 'location is the repository');
  t.equal(r1.checksum, null, 'no archive checksum');
  t.equal(r1.size_bytes, r1.snapshot.added_bytes, 'size_bytes: what the snapshot added');
  t.equal(r1.snapshot.reused_files, 0, 'the first snapshot stores everything');
  t.ok(r2.snapshot.reused_files > 0, `the second reuses ${r2.snapshot.reused_files} SSTs`);
  t.ok(r2.snapshot.added_bytes < r1.snapshot.added_bytes, `and adds less: ${r2.snapshot.added_bytes} < ${r1.snapshot.added_bytes}`);
  t.same(r2.prune.removed, [], 'keep_last 2: nothing removed at two snapshots');
  t.same(r3.prune.removed, [`${repo}#${r1.snapshot.id}`], 'the third run prunes the first snapshot (keep_last 2)');
  t.equal(r3.prune.kept, 2);
  t.match(r3.prune.wal, /never removes WAL/);
  const list = await cli(['backup', 'list', '--repo', repo, '--json']);
  t.same(list.body.snapshots.map((s: any) => s.id), [r2.snapshot.id, r3.snapshot.id], 'the repository holds the two newest');
  // list and prune given no location act on backup.repo, as run does
  t.same((await cli(['backup', 'list', '--json'])).body, list.body, 'backup list with backup.repo set: the repository');
  const dry = await cli(['backup', 'prune', '--keep-last', '1', '--dry-run', '--json']);
  t.equal(dry.code, 0, dry.stderr);
  t.same(dry.body.removed.map((s: any) => s.id), [r2.snapshot.id], 'backup prune with backup.repo set: the repository (dry run)');
  fs.mkdirSync(path.join(dir, 'no-archives-here'));
  const archList = await cli(['backup', 'list', path.join(dir, 'no-archives-here'), '--json']);
  t.same(archList.body, [], 'a location argument lists archives although backup.repo is set');
  const v = await cli(['backup', 'verify', '--repo', repo, '--json']);
  t.equal(v.body.status, 'VALID', 'and verifies after the sweep');

  // metrics: Pushgateway, textfile, the node's /metrics
  t.equal(push.got.length, 3, 'one push per run');
  t.equal(push.got[2].url, '/metrics/job/guts-backup', "the guide's Pushgateway path");
  t.equal(metric(push.got[2].body, 'guts_backup_size_bytes'), r3.size_bytes, 'pushed size');
  t.equal(metric(push.got[2].body, 'guts_backup_last_success'), 1);
  t.equal(metric(push.got[2].body, 'guts_backup_verify_last_success'), 1);
  t.ok(metric(push.got[2].body, 'guts_backup_duration_seconds')! > 0, 'pushed duration');
  const tf = fs.readFileSync(textfile, 'utf8');
  t.equal(metric(tf, 'guts_backup_size_bytes'), r3.size_bytes, 'textfile size');
  t.equal(metric(tf, 'guts_backup_last_success'), 1, 'textfile success');
  t.ok(Math.abs(metric(tf, 'guts_last_backup_timestamp')! - Date.now() / 1000) < 120, 'textfile timestamp is now');
  const m = (await request(node.url + '/metrics')).body.toString();
  t.equal(metric(m, 'guts_backup_size_bytes'), r3.size_bytes, "the node's /metrics shows the latest snapshot");
  t.equal(metric(m, 'guts_last_backup_timestamp'), Math.floor(Date.parse(list.body.snapshots[1].created) / 1000), "and its time");

  // a prune holds the repository: --lock-wait 0 fails at once with exit 3, the default waits
  const loc = openLocation(repo);
  t.teardown(() => loc.close());
  const lock = await acquireLock(loc, 'prune');
  const locked = await cli(['backup', 'run', '--json', '--lock-wait', '0']);
  t.equal(locked.code, 3, 'exit 3 while a prune holds the repository (--lock-wait 0)');
  t.equal(locked.body.failed_step, 'create');
  t.equal(locked.body.error.code, 'GUTS_REPO_LOCKED');
  t.equal(metric(push.got[push.got.length - 1].body, 'guts_backup_last_success'), 0, 'failure pushed');
  t.equal(metric(fs.readFileSync(textfile, 'utf8'), 'guts_backup_last_success'), 0, 'failure in the textfile');
  t.equal(metric(fs.readFileSync(textfile, 'utf8'), 'guts_backup_size_bytes'), r3.size_bytes, 'the last success size stays');
  fs.writeFileSync(config, fs.readFileSync(config, 'utf8') + '  lock_wait: 120\n');
  const waiting = start(['backup', 'run', '--json']);
  await waiting.untilStderr(/waiting up to 120 s for it \(--lock-wait\)/);
  t.equal(waiting.child.exitCode, null, 'backup.lock_wait: the run waits for the prune');
  await lock.release();
  const w = await waiting.done;
  t.equal(w.code, 0, `and completes after it: ${w.stderr}`);
  t.equal(w.body.status, 'success');
  t.equal(metric(fs.readFileSync(textfile, 'utf8'), 'guts_backup_last_success'), 1, 'success again in the textfile');

  // the command line: --output-dir makes an archive run although backup.repo is set; usage errors
  const arch = await cli(['backup', 'run', '--output-dir', path.join(dir, 'archives'), '--no-prune', '--json']);
  t.equal(arch.code, 0, arch.stderr);
  t.match(arch.body.file, /guts-\d{8}-\d{6}\.tar\.zst$/, '--output-dir: an archive');
  t.equal(arch.body.snapshot, undefined, 'no snapshot key in an archive run');
  t.equal((await cli(['backup', 'run', '--repo', repo, '--to', 's3://b/p'])).code, 2, '--repo with --to: usage');
  t.equal((await cli(['backup', 'run', '--repo', repo, '--consensus-only'])).code, 2, '--repo with --consensus-only: usage');

  writing = false;
  await writer;
  t.ok(writes > 0, `${writes} writes served during the runs`);
});

t.test('backup run --repo s3://', async (t) => {
  fs.writeFileSync(config, '');
  const s3 = await startS3(['guts-backups']);
  t.teardown(() => s3.stop());
  const r = await cli(['backup', 'run', '--repo', 's3://guts-backups/node-1', '--keep-last', '1', '--textfile', textfile, '--json'], s3.env);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.body.status, 'success');
  t.equal(r.body.kind, 'full', 'no node runs now: a direct checkpoint');
  t.same(r.body.steps.map((s: any) => [s.step, s.status]), [['create', 'ok'], ['verify', 'ok'], ['upload', 'ok'], ['prune', 'ok'], ['metrics', 'ok']]);
  t.equal(r.body.file, `s3://guts-backups/node-1#${r.body.snapshot.id}`);
  const keys = storedKeys(s3, 'guts-backups');
  t.ok(keys.includes(`node-1/snapshots/${r.body.snapshot.id}.json`), 'the snapshot manifest is in the bucket');
  t.ok(keys.some((k) => k.startsWith('node-1/data/')), 'and its SST objects');
  t.same(keys.filter((k) => k.includes('/locks/')), [], 'no lock left');
  t.equal(metric(fs.readFileSync(textfile, 'utf8'), 'guts_backup_size_bytes'), r.body.size_bytes, 'textfile updated');
  t.notOk(r.stdout.includes(s3.secret) || r.stderr.includes(s3.secret), 'the secret key appears in no output');
});
