// backup create / verify / restore with s3:// URLs against a real
// S3-compatible server (s3rver on 127.0.0.1), through the real CLI.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { readLastBackup } from '../../src/metrics';
import { BIN } from '../lib/node-proc';
import { startS3, storedKeys, storedObjectPath } from '../lib/s3';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'guts-s3b-'));
const dataDir = path.join(dir, 'data');
const outputs: string[] = [];

function cli(args: string[], env: NodeJS.ProcessEnv) {
  const r = spawnSync(process.execPath, [BIN, '--data-dir', dataDir, ...args], {
    encoding: 'utf8',
    env: { ...process.env, GUTS_CONFIG: '/dev/null', ...env },
    timeout: 120_000,
  });
  outputs.push(r.stdout, r.stderr);
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A create that takes a few seconds (zstd 19 on one thread), to interrupt. */
function slowCreate(url: string, env: NodeJS.ProcessEnv) {
  const child = spawn(process.execPath, [BIN, '--data-dir', dataDir, 'backup', 'create', '--output', url, '--level', '19', '--threads', '1'], {
    env: { ...process.env, GUTS_CONFIG: '/dev/null', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (c) => (out += c));
  child.stderr!.on('data', (c) => (out += c));
  const exited = new Promise<{ code: number | null; out: string }>((resolve) =>
    child.on('exit', (code) => {
      outputs.push(out);
      resolve({ code, out });
    }),
  );
  return { child, exited };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

t.test('s3:// round trips', async (t) => {
  const seed = cli(['dev', 'seed', '--size', '24MiB'], {});
  t.equal(seed.code, 0, seed.stderr);
  const s3 = await startS3(['guts-backups']);
  t.teardown(() => s3.stop());
  const env = s3.env;
  const url = 's3://guts-backups/node-1/guts-1.tar.zst';

  const c = cli(['backup', 'create', '--output', url, '--json'], env);
  t.equal(c.code, 0, c.stderr);
  const created = JSON.parse(c.stdout);
  t.equal(created.file, url, 'the result names the URL');
  t.same(storedKeys(s3, 'guts-backups'), ['node-1/guts-1.tar.zst', 'node-1/guts-1.tar.zst.manifest.json', 'node-1/guts-1.tar.zst.sha256']);
  const stored = fs.readFileSync(storedObjectPath(s3, 'guts-backups', 'node-1/guts-1.tar.zst'));
  t.ok(stored.length > 8 << 20, `a multipart upload (${stored.length} bytes)`);
  const sha = crypto.createHash('sha256').update(stored).digest('hex');
  t.equal(created.sha256, sha, 'SHA-256 end to end: the stored object hashes to what the writer computed');
  t.equal(fs.readFileSync(storedObjectPath(s3, 'guts-backups', 'node-1/guts-1.tar.zst.sha256'), 'utf8'), `${sha}  guts-1.tar.zst\n`, 'sidecar for sha256sum -c');
  const manifest = JSON.parse(fs.readFileSync(storedObjectPath(s3, 'guts-backups', 'node-1/guts-1.tar.zst.manifest.json'), 'utf8'));
  t.equal(manifest.format, 'guts-backup');
  t.equal(readLastBackup(dataDir)?.file, url, 'last-backup record names the URL');
  // stock tools read it back
  const localCopy = path.join(dir, 'copy.tar.zst');
  fs.writeFileSync(localCopy, stored);
  t.equal(spawnSync('sh', ['-c', `zstd -dc ${localCopy} | tar -t | head -1`], { encoding: 'utf8' }).stdout.trim(), 'GUTS-INDEX', 'zstd | tar reads the uploaded object');

  // rotation by name: a guts-node backup under the name is replaced once the new one is complete
  const again = cli(['backup', 'create', '--output', url, '--json'], env);
  t.equal(again.code, 0, again.stderr);
  const rotated = JSON.parse(again.stdout);
  const stored2 = fs.readFileSync(storedObjectPath(s3, 'guts-backups', 'node-1/guts-1.tar.zst'));
  t.equal(rotated.sha256, crypto.createHash("sha256").update(stored2).digest("hex"), 'the new archive under the name');
  t.match(fs.readFileSync(storedObjectPath(s3, 'guts-backups', 'node-1/guts-1.tar.zst.sha256'), 'utf8'), rotated.sha256, 'with its own sidecar');
  // anything else under a name is not replaced without --force
  fs.writeFileSync(path.join(dir, 'foreign.bin'), 'not a backup');
  const { S3Client, PutObjectCommand } = await import('@aws-sdk/client-s3');
  const client = new S3Client({ endpoint: s3.endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: s3.keyId, secretAccessKey: s3.secret } });
  await client.send(new PutObjectCommand({ Bucket: 'guts-backups', Key: 'node-1/foreign.tar.zst', Body: 'not a backup' }));
  client.destroy();
  const foreign = cli(['backup', 'create', '--output', 's3://guts-backups/node-1/foreign.tar.zst'], env);
  t.equal(foreign.code, 2, 'a foreign object is not replaced');
  t.match(foreign.stderr, /GUTS_EXISTS: .*s3:\/\/guts-backups\/node-1\/foreign\.tar\.zst/);

  const v = cli(['backup', 'verify', url, '--json'], env);
  t.equal(v.code, 0, v.stderr);
  const report = JSON.parse(v.stdout);
  t.equal(report.status, 'VALID');
  t.equal(report.sidecar, 'ok', 'sidecar checked against the streamed SHA-256');
  t.equal(report.size_bytes, stored2.length);

  const target = path.join(dir, 'restored');
  const r = cli(['backup', 'restore', url, '--target', target, '--json'], env);
  t.equal(r.code, 0, r.stderr);
  const full = cli(['verify', '--data-dir', target, '--full'], env);
  t.equal(full.code, 0, full.stdout + full.stderr);

  const missing = cli(['backup', 'verify', 's3://guts-backups/node-1/nope.tar.zst'], env);
  t.equal(missing.code, 2);
  t.match(missing.stderr, /GUTS_NOT_FOUND: .*s3:\/\/guts-backups\/node-1\/nope\.tar\.zst/);

  // a flipped byte in the stored object
  const obj = storedObjectPath(s3, 'guts-backups', 'node-1/guts-1.tar.zst');
  const bytes = fs.readFileSync(obj);
  bytes[Math.floor(bytes.length / 2)] ^= 0x40;
  fs.writeFileSync(obj, bytes);
  const bad = cli(['backup', 'verify', url], env);
  t.equal(bad.code, 1, 'verify: exit 1 on a flipped byte');
  t.match(bad.stdout, /Status: INVALID/);
  const badTarget = path.join(dir, 'restored-bad');
  const br = cli(['backup', 'restore', url, '--target', badTarget], env);
  t.equal(br.code, 1, 'restore: exit 1 on a flipped byte');
  t.match(br.stderr, /GUTS_CORRUPT/);
  t.notOk(fs.existsSync(badTarget), 'nothing restored');

  // a server that goes away mid-upload
  const slowUrl = 's3://guts-backups/node-1/killed.tar.zst';
  const k = slowCreate(slowUrl, env);
  await sleep(2500);
  await s3.kill();
  const ke = await k.exited;
  t.equal(ke.code, 2, 'server gone mid-upload: exit 2: ' + ke.out);
  t.match(ke.out, /guts-node: GUTS_IO: .*s3:\/\/guts-backups\/node-1\/killed\.tar\.zst/, 'a clear error naming the URL');
  await s3.restart();
  t.notOk(storedKeys(s3, 'guts-backups').some((k) => k.includes('killed')), 'no object under the final key');
  t.same(fs.readdirSync(path.join(dataDir, 'checkpoints')), [], 'checkpoint released');

  // SIGINT mid-upload
  const intUrl = 's3://guts-backups/node-1/interrupted.tar.zst';
  const i = slowCreate(intUrl, env);
  await sleep(2500);
  i.child.kill('SIGINT');
  const ie = await i.exited;
  t.equal(ie.code, 130, 'SIGINT: exit 130');
  t.notOk(storedKeys(s3, 'guts-backups').some((k) => k.includes('interrupted')), 'no object under the final key');

  const all = outputs.join('\n');
  t.notOk(all.includes(s3.secret), 'the secret key appears in no output');
  t.notMatch(all, /NodeVersionSupportWarning|DeprecationWarning|\(node:\d+\) /, 'no SDK or Node warning reaches the terminal');
});
