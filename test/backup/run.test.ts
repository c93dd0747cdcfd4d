// backup run end to end: a live node under writes, local and S3 (s3rver),
// a Pushgateway-like receiver and a notification receiver on loopback.
import t from 'tap';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';

import { BIN, metric, pushObjects, request, startNode } from '../lib/node-proc';
import { startS3, storedKeys } from '../lib/s3';

interface Received {
  method: string;
  url: string;
  type: string;
  body: string;
}

/** A real HTTP receiver on 127.0.0.1: records every request; answers `status`. */
async function receiver(status = 200) {
  const got: Received[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      got.push({ method: req.method!, url: req.url!, type: String(req.headers['content-type']), body });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return { url, got, close: () => new Promise<void>((r) => server.close(() => r())) };
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'guts-run-'));
const dataDir = path.join(dir, 'data');
fs.writeFileSync(path.join(dir, 'config.yaml'), ''); // a named config must exist; the tests add to it
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const c = spawn(process.execPath, [BIN, '--data-dir', dataDir, ...args], { env: { ...process.env, GUTS_CONFIG: path.join(dir, 'config.yaml'), ...env } });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d) => (stdout += d));
    c.stderr.on('data', (d) => (stderr += d));
    c.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

t.test('backup run', async (t) => {
  const seeded = await cli(['dev', 'seed', '--size', '4MiB']);
  t.equal(seeded.code, 0, seeded.stderr);
  const s3 = await startS3(['guts-backups']);
  t.teardown(() => s3.stop());
  const push = await receiver();
  const hook = await receiver();
  t.teardown(() => push.close());
  t.teardown(() => hook.close());
  const node = await startNode(dataDir, [], { GUTS_CONFIG: path.join(dir, 'config.yaml') });
  t.teardown(() => node.stop());

  // writes keep arriving while the backups run
  let writing = true;
  let writes = 0;
  const writer = (async () => {
    while (writing) {
      const r = await pushObjects(node.url, 'alice/live', [{ type: 'blob', data: Buffer.from(`blob ${writes} ${Date.now()}\n`) }]);
      if (r.status === 200) writes++;
    }
  })();

  const textfile = path.join(dir, 'textfile', 'guts_backup.prom');
  fs.mkdirSync(path.dirname(textfile));
  const local = path.join(dir, 'backups');
  const r1 = await cli(['backup', 'run', '--output-dir', local, '--keep-last', '3', '--pushgateway', push.url, '--textfile', textfile, '--notify-url', hook.url + '/hook', '--json']);
  t.equal(r1.code, 0, r1.stderr);
  const res1 = JSON.parse(r1.stdout);
  t.equal(res1.status, 'success');
  t.equal(res1.kind, 'hot', 'a node runs: hot backup through it');
  t.same(res1.steps.map((s: { step: string }) => s.step), ['create', 'verify', 'upload', 'prune', 'metrics', 'notify']);
  for (const s of ['create', 'verify', 'upload', 'prune', 'metrics', 'notify']) t.match(r1.stderr, new RegExp(`^\\[\\d{4}-\\d\\d-\\d\\dT[\\d:]+Z\\] ${s}: `, 'm'), `one log line for ${s}`);
  t.ok(fs.existsSync(res1.file) && fs.existsSync(res1.file + '.sha256') && fs.existsSync(res1.file + '.manifest.json'), 'archive, sidecar, manifest');
  t.equal(push.got.length, 1);
  t.equal(push.got[0].method, 'POST');
  t.equal(push.got[0].url, '/metrics/job/guts-backup', 'the guide\'s Pushgateway path');
  for (const name of ['guts_last_backup_timestamp', 'guts_backup_size_bytes', 'guts_backup_duration_seconds', 'guts_backup_last_success', 'guts_backup_verify_last_success'])
    t.ok(metric(push.got[0].body, name) !== undefined, `pushed ${name}`);
  t.equal(metric(push.got[0].body, 'guts_backup_size_bytes'), res1.size_bytes);
  t.equal(metric(push.got[0].body, 'guts_backup_last_success'), 1);
  t.equal(metric(fs.readFileSync(textfile, 'utf8'), 'guts_backup_verify_last_success'), 1, 'textfile written');
  t.same(fs.readdirSync(path.dirname(textfile)), ['guts_backup.prom'], 'no temp file left beside the textfile');
  t.equal(hook.got.length, 1);
  t.equal(hook.got[0].type, 'application/json');
  const note = JSON.parse(hook.got[0].body);
  for (const k of ['status', 'timestamp', 'file', 'size_bytes', 'checksum']) t.ok(k in note, `notification has ${k} (the guide script's shape)`);
  t.equal(note.status, 'success');
  t.match(note.checksum, /^sha256:[0-9a-f]{64}$/);
  const m = await request(node.url + '/metrics');
  t.equal(metric(m.body.toString(), 'guts_backup_size_bytes'), res1.size_bytes, "the running node's /metrics shows the latest backup");

  // to S3, consensus-only: its own labelled series and grouping key
  const r2 = await cli(['backup', 'run', '--to', 's3://guts-backups/node-1', '--consensus-only', '--keep-last', '2', '--pushgateway', push.url, '--textfile', textfile, '--json'], s3.env);
  t.equal(r2.code, 0, r2.stderr);
  const res2 = JSON.parse(r2.stdout);
  t.equal(res2.kind, 'consensus-only');
  t.match(res2.file, /^s3:\/\/guts-backups\/node-1\/consensus-\d{8}-\d{6}\.tar\.zst$/);
  t.equal(storedKeys(s3, 'guts-backups').length, 3, 'archive, sidecar and manifest in the bucket');
  t.equal(push.got[1].url, '/metrics/job/guts-backup/kind/consensus-only', 'consensus-only pushed under its own grouping key');
  const tf = fs.readFileSync(textfile, 'utf8');
  t.ok(metric(tf, 'guts_last_backup_timestamp{kind="consensus-only"}'), 'labelled series for consensus-only');
  t.ok(metric(tf, 'guts_last_backup_timestamp'), 'the full backup series kept beside it');

  // S3, full, three more runs: prune keeps 2
  for (let i = 0; i < 2; i++) {
    await new Promise((r) => setTimeout(r, 1100)); // names carry the second
    const r = await cli(['backup', 'run', '--to', 's3://guts-backups/node-1', '--keep-last', '1', '--json'], s3.env);
    t.equal(r.code, 0, r.stderr);
  }
  const full = storedKeys(s3, 'guts-backups').filter((k) => /guts-\d{8}-\d{6}\.tar\.zst$/.test(k));
  t.equal(full.length, 1, 'prune removed the older full backup from the bucket');
  t.equal(storedKeys(s3, 'guts-backups').filter((k) => /consensus-\d{8}-\d{6}\.tar\.zst$/.test(k)).length, 1, 'the consensus backup is its own group');

  // a failing step: unreachable bucket. Non-zero exit naming the step, failure metric, failure notification.
  const hook500 = await receiver(500);
  t.teardown(() => hook500.close());
  const bad = await cli(['backup', 'run', '--to', 's3://no-such-bucket/x', '--pushgateway', push.url, '--notify-url', hook.url, '--json'], s3.env);
  t.equal(bad.code, 2, bad.stderr);
  const badRes = JSON.parse(bad.stdout);
  t.equal(badRes.status, 'failure');
  t.equal(badRes.failed_step, 'create');
  t.equal(badRes.error.code, 'GUTS_NOT_FOUND');
  t.match(bad.stderr, /create: FAILED: GUTS_NOT_FOUND: .*no-such-bucket/);
  const lastPush = push.got[push.got.length - 1].body;
  t.equal(metric(lastPush, 'guts_backup_last_success'), 0, 'failure metric pushed');
  t.equal(metric(lastPush, 'guts_last_backup_timestamp'), undefined, 'the last success time is left as it was');
  t.equal(JSON.parse(hook.got[hook.got.length - 1].body).status, 'failure', 'failure notified');

  // notification and Pushgateway failures are not fatal
  const r3 = await cli(['backup', 'run', '--output-dir', local, '--keep-last', '3', '--pushgateway', 'http://127.0.0.1:9/', '--notify-url', hook500.url]);
  t.equal(r3.code, 0, 'exit 0 although the Pushgateway is down and the notification got HTTP 500');
  t.match(r3.stderr, /metrics: pushgateway .*FAILED .*not fatal/);
  t.match(r3.stderr, /notify: .*FAILED \(HTTP 500.*not fatal\)/);

  writing = false;
  await writer;
  t.ok(writes > 0, `${writes} writes served during the runs`);
  const all = [r1, r2, bad, r3].map((r) => r.stdout + r.stderr).join('\n');
  t.notOk(all.includes(s3.secret), 'the secret key appears in no output');
});
