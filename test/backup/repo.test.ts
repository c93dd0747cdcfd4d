// Backup repository (backup create/list/verify/restore/prune/export --repo):
// real stores with real RocksDB SSTs, real zstd objects, real processes
// killed with SIGKILL, and a real S3-compatible server (s3rver).
import t, { Test } from 'tap';
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { GutsStore } from '../../src/store';
import { BIN } from '../lib/node-proc';
import { startS3 } from '../lib/s3';
import { grow, type Obj } from '../lib/repo-cli';

const ENV = { GUTS_CONFIG: '/dev/null' };

function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], { env: { ...process.env, ...ENV, ...env }, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function json(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = cli([...args, '--json'], env);
  let body: Record<string, any> = {};
  try {
    body = JSON.parse(r.stdout);
  } catch {
    /* left empty: the caller's assertions fail with the stderr below */
  }
  return { ...r, body };
}

/** Every object of `present` is in the store with its bytes, none of `absent` is. */
async function compareObjects(t: Test, dataDir: string, present: Obj[], absent: Obj[], what: string): Promise<void> {
  const store = await GutsStore.open(dataDir, { readOnly: true });
  try {
    let same = 0;
    for (const o of present) {
      const got = await store.getObject(o.id);
      if (got && got.data.equals(o.data)) same++;
    }
    t.equal(same, present.length, `${what}: all ${present.length} objects present, byte for byte`);
    const has = absent.length ? await store.hasObjects(absent.map((o) => o.id)) : [];
    t.equal(has.filter(Boolean).length, 0, `${what}: none of the ${absent.length} later objects`);
  } finally {
    await store.close();
  }
}

/** docs/JSON.md: the JSON blocks of "### title" */
function documented(title: string): unknown {
  const text = fs.readFileSync(path.join(__dirname, '..', '..', 'docs', 'JSON.md'), 'utf8');
  const section = text.split(/^### /m).find((s) => s.slice(0, s.indexOf('\n')).trim() === title);
  const m = section ? /```json\n([\s\S]*?)```/.exec(section) : null;
  if (!m) throw new Error(`docs/JSON.md has no JSON block under "### ${title}"`);
  return JSON.parse(m[1]);
}

/** Keys of `v` (deep) that `doc` does not show, and keys that break the naming scheme of docs/JSON.md. */
function shapeProblems(v: unknown, doc: unknown, where = '$'): string[] {
  if (Array.isArray(v)) return Array.isArray(doc) && doc.length ? v.flatMap((x, i) => shapeProblems(x, doc[0], `${where}[${i}]`)) : [];
  if (!v || typeof v !== 'object' || !doc || typeof doc !== 'object' || Array.isArray(doc)) return [];
  const out: string[] = [];
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    if (!/^[a-z][a-z0-9]*(_[a-z0-9]+)*$/.test(k) || /(_ms|_s|_size|_kb|_mb|_millis)$|^(bytes|size|duration|elapsed|checksum|mtime_ms)$/.test(k)) out.push(`${where}.${k}: naming`);
    if (!(k in (doc as Record<string, unknown>))) out.push(`${where}.${k}: undocumented`);
    else out.push(...shapeProblems(x, (doc as Record<string, unknown>)[k], `${where}.${k}`));
  }
  return out;
}

function fullCounts(dataDir: string) {
  const r = json(['verify', '--data-dir', dataDir, '--full']);
  return { ok: r.body.ok as boolean, counts: r.body.counts as Record<string, number> };
}

function tmp(t: Test): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'guts-repo-'));
  t.teardown(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

async function roundTrip(t: Test, repo: string, env: NodeJS.ProcessEnv, dir: string, listObjects: () => string[]) {
  const data = path.join(dir, 'data');
  const base = await grow(data, 3e6, 'base');
  const a = json(['--data-dir', data, 'backup', 'create', '--repo', repo], env);
  t.equal(a.code, 0, `create A: ${a.stderr}`);
  t.equal(a.body.reused_files, 0, 'first snapshot stores everything');
  const countsA = fullCounts(data);

  const more = await grow(data, 3e4, 'one-percent');
  const b = json(['--data-dir', data, 'backup', 'create', '--repo', repo], env);
  t.equal(b.code, 0, `create B: ${b.stderr}`);
  const countsB = fullCounts(data);
  t.ok(b.body.reused_files > 0, `B reuses ${b.body.reused_files} SSTs`);
  t.ok(b.body.added_bytes <= 0.05 * a.body.added_bytes, `B after ~1% new objects stores ${b.body.added_bytes} bytes, A ${a.body.added_bytes}`);

  // only the new SSTs and the small files were stored: every SST of B already in A was reused
  const manifestOf = (id: string) => JSON.parse(cli(['backup', 'list', '--repo', repo, '--json'], env).stdout).snapshots.find((s: any) => s.id === id);
  t.ok(manifestOf(b.body.snapshot), 'list shows B');
  const list = json(['backup', 'list', '--repo', repo], env);
  t.equal(list.body.snapshots.length, 2, 'two snapshots');
  const snapA = list.body.snapshots[0];
  const snapB = list.body.snapshots[1];
  t.equal(snapA.id, a.body.snapshot);
  t.equal(snapB.added_bytes, b.body.added_bytes);
  const keys = listObjects();
  const dataKeys = keys.filter((k) => k.includes('data/'));
  const ownB = keys.filter((k) => k.includes(`files/${b.body.snapshot}/`));
  t.equal(b.body.added_objects, ownB.length + (b.body.files - b.body.reused_files - ownB.length), 'added = own files + new SSTs');
  t.equal(dataKeys.length, a.body.files - keys.filter((k) => k.includes(`files/${a.body.snapshot}/`)).length + (b.body.files - b.body.reused_files - ownB.length), 'data/ holds each SST once');

  const v = json(['backup', 'verify', '--repo', repo, '--deep'], env);
  t.equal(v.code, 0, `verify --deep: ${v.stdout}`);
  t.same(shapeProblems(a.body, documented('backup create --repo')), [], 'create --json as docs/JSON.md shows');
  t.same(shapeProblems(list.body, documented('backup list --repo')), [], 'list --json as documented');
  t.same(shapeProblems(v.body, documented('backup verify --repo')), [], 'verify --json as documented');
  t.equal(v.body.status, 'VALID');
  t.same(v.body.snapshots.map((s: any) => s.objects_check.objects), [countsA.counts.commit + countsA.counts.tree + countsA.counts.blob + countsA.counts.tag, countsB.counts.commit + countsB.counts.tree + countsB.counts.blob + countsB.counts.tag], 'deep check: exact object counts per snapshot');

  for (const [snap, counts, present, absent] of [
    [a.body.snapshot, countsA, base, more],
    [b.body.snapshot, countsB, [...base, ...more], []],
  ] as const) {
    const target = path.join(dir, `restore-${snap}`);
    const r = json(['backup', 'restore', '--repo', repo, '--snapshot', snap, '--target', target, '--verify'], env);
    t.equal(r.code, 0, `restore ${snap}: ${r.stderr}`);
    await compareObjects(t, target, present as Obj[], absent as Obj[], `snapshot ${snap}`);
    const f = fullCounts(target);
    t.ok(f.ok, 'verify --full of the restored store');
    t.same(f.counts, counts.counts, 'verify --full counts equal the store at snapshot time');
  }

  // export: a normal archive, verified and restorable by the archive path
  const out = path.join(dir, 'export.tar.zst');
  const e = json(['backup', 'export', '--repo', repo, '--snapshot', a.body.snapshot, '--output', out], env);
  t.equal(e.code, 0, `export: ${e.stderr}`);
  t.same(shapeProblems(e.body, documented('backup export')), [], 'export --json as documented');
  t.ok(fs.existsSync(out + '.sha256'), 'sidecar written');
  const ev = json(['backup', 'verify', out, '--deep']);
  t.equal(ev.body.status, 'VALID', 'exported archive verifies (deep)');
  const er = cli(['backup', 'restore', out, '--target', path.join(dir, 'from-export')]);
  t.equal(er.code, 0, 'exported archive restores');
  t.same(fullCounts(path.join(dir, 'from-export')).counts, countsA.counts, 'with snapshot A counts');

  // prune: keep the newest; A's own files and its SSTs B does not share are swept
  const p = json(['backup', 'prune', '--repo', repo, '--keep-last', '1'], env);
  t.equal(p.code, 0, `prune: ${p.stderr}`);
  t.same(shapeProblems(p.body, documented('backup prune --repo')), [], 'prune --json as documented');
  t.same(p.body.removed.map((x: any) => x.id), [a.body.snapshot]);
  t.ok(p.body.swept_objects > 0, `swept ${p.body.swept_objects} objects`);
  const after = listObjects().filter((k) => /(data|files)\//.test(k));
  t.equal(after.length, p.body.kept_objects, 'only referenced objects remain');
  const v2 = json(['backup', 'verify', '--repo', repo], env);
  t.equal(v2.body.status, 'VALID', 'B still verifies after pruning A');
  return { data, a: a.body, b: b.body };
}

t.test('local repository: incremental snapshot, exact restores, export, prune', async (t) => {
  const dir = tmp(t);
  const repo = path.join(dir, 'repo');
  const walk = (d: string, rel = ''): string[] =>
    fs.existsSync(d) ? fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(d, e.name), rel + e.name + '/') : [rel + e.name])) : [];
  await roundTrip(t, repo, {}, dir, () => walk(repo));
  t.ok(fs.existsSync(path.join(repo, 'config.json')), 'config.json');
  t.equal(JSON.parse(fs.readFileSync(path.join(repo, 'config.json'), 'utf8')).encryption, null, 'encryption: null');
  // stock tools: each object is a zstd frame of the file (docs/FORMAT.md)
  const snap = JSON.parse(fs.readFileSync(path.join(repo, 'snapshots', fs.readdirSync(path.join(repo, 'snapshots'))[0]), 'utf8'));
  const f = snap.files.find((x: any) => x.path.endsWith('.sst'));
  const z = spawnSync('zstd', ['-dc', path.join(repo, f.object)], { maxBuffer: 1 << 30 });
  t.equal(z.status, 0, 'zstd -d reads an object');
  t.equal(z.stdout.length, f.size, 'to the recorded size');

  // usage / not-a-repository errors
  t.equal(json(['backup', 'list', '--repo', path.join(dir, 'nothing')]).body.error?.code, 'GUTS_NOT_FOUND');
  t.equal(cli(['backup', 'verify']).code, 2, 'verify without file or --repo: usage');
  t.equal(json(['backup', 'restore', '--repo', repo, '--snapshot', 'nope', '--target', path.join(dir, 'x')]).body.error?.code, 'GUTS_NOT_FOUND');
});

t.test('a repository at or inside the data dir it backs up is refused, nothing written', async (t) => {
  const dir = tmp(t);
  const data = path.join(dir, 'data');
  await grow(data, 1e4, 'in');
  fs.symlinkSync(data, path.join(dir, 'link'));
  for (const repo of [data, path.join(data, 'repo'), path.join(dir, 'link', 'new', 'repo')]) {
    const r = json(['--data-dir', data, 'backup', 'create', '--repo', repo]);
    t.equal(r.body.error?.code, 'GUTS_INVALID_ARGUMENT', `refused: ${repo}`);
    t.equal(r.code, 2);
  }
  t.notOk(fs.existsSync(path.join(data, 'repo')), 'no repository created in the data dir');
  t.notOk(fs.existsSync(path.join(data, 'new')), 'nor through a link to it');
  t.notOk(fs.existsSync(path.join(data, 'snapshots')), 'nor in the data dir itself');
});

t.test('a corrupted shared SST: verify names every dependent snapshot, restore refuses', async (t) => {
  const dir = tmp(t);
  const repo = path.join(dir, 'repo');
  const data = path.join(dir, 'data');
  await grow(data, 1e6, 'c');
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    if (i) await grow(data, 1e4, `c${i}`);
    const r = json(['--data-dir', data, 'backup', 'create', '--repo', repo]);
    t.equal(r.code, 0, `create ${i}`);
    ids.push(r.body.snapshot);
  }
  const snaps = ids.map((id) => JSON.parse(fs.readFileSync(path.join(repo, 'snapshots', `${id}.json`), 'utf8')));
  // the biggest SST of the first snapshot is shared by all three
  const shared = snaps[0].files.filter((f: any) => f.shared).sort((x: any, y: any) => y.size - x.size)[0];
  t.ok(snaps.every((s: any) => s.files.some((f: any) => f.object === shared.object)), 'shared by every snapshot');
  const file = path.join(repo, shared.object);
  const buf = fs.readFileSync(file);
  buf[Math.floor(buf.length / 2)] ^= 0x55;
  fs.writeFileSync(file, buf);
  const v = json(['backup', 'verify', '--repo', repo]);
  t.equal(v.code, 1, 'exit 1');
  t.equal(v.body.status, 'INVALID');
  t.equal(v.body.problems.length, 1, 'one damaged object');
  t.equal(v.body.problems[0].code, 'GUTS_REPO_CORRUPT');
  t.same(v.body.problems[0].snapshots, [...ids].sort(), 'names every snapshot depending on it');
  const one = json(['backup', 'verify', '--repo', repo, '--snapshot', ids[1]]);
  t.same(one.body.problems[0].snapshots, [ids[1]], '--snapshot: only that one');
  const target = path.join(dir, 'restored');
  for (const id of ids) {
    const r = json(['backup', 'restore', '--repo', repo, '--snapshot', id, '--target', target]);
    t.equal(r.code, 1, `restore ${id} refuses (exit 1)`);
    t.equal(r.body.error?.code, 'GUTS_REPO_CORRUPT');
  }
  t.notOk(fs.existsSync(target), 'target never created');
  t.same(fs.readdirSync(dir).filter((n) => n.includes('staging')), [], 'no staging dir left');
  // a missing object likewise
  fs.unlinkSync(file);
  t.equal(json(['backup', 'verify', '--repo', repo]).body.problems[0].code, 'GUTS_REPO_CORRUPT', 'missing object');
});

function spawnCli(args: string[]): ChildProcess {
  return spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...ENV }, stdio: 'ignore' });
}

const exited = (c: ChildProcess) => new Promise<number | null>((resolve) => (c.exitCode !== null || c.signalCode !== null ? resolve(c.exitCode) : c.once('exit', (code) => resolve(code))));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** resolves once a create lock is in the repository or the process has exited */
async function untilCreateLocked(repo: string, c: ChildProcess): Promise<void> {
  const locks = path.join(repo, 'locks');
  const deadline = Date.now() + 60_000;
  while (c.exitCode === null && c.signalCode === null && Date.now() < deadline) {
    if (fs.existsSync(locks) && fs.readdirSync(locks).some((n) => n.startsWith('create-'))) return;
    await sleep(5);
  }
}

t.test('kill -9 during create and during prune, 10 times each', async (t) => {
  const dir = tmp(t);
  const repo = path.join(dir, 'repo');
  const data = path.join(dir, 'data');
  await grow(data, 2e6, 'k');
  t.equal(cli(['--data-dir', data, 'backup', 'create', '--repo', repo]).code, 0, 'a first snapshot');
  for (let i = 0; i < 10; i++) {
    await grow(data, 2e5, `k${i}`);
    const c = spawnCli(['--data-dir', data, 'backup', 'create', '--repo', repo, '--level', '9']);
    // kill once the create holds its lock (Node start-up under load can take
    // longer than any fixed delay), at a different point of its work each time;
    // the last kill lands right at the lock, so the prune below always has a
    // stale lock to collect (a later create reuses what an earlier one left)
    await untilCreateLocked(repo, c);
    await sleep(((9 - i) * 97) % 600);
    c.kill('SIGKILL');
    await exited(c);
  }
  const v = json(['backup', 'verify', '--repo', repo]);
  t.equal(v.code, 0, 'repository verifies clean after 10 killed creates');
  // temp files of uploads whose process is gone, as this build and older builds name them
  const deadPid = 4_194_000; // above any pid this machine hands out in a test run
  const planted = [path.join(repo, 'data', `.planted.upload-${deadPid}-0-k3j9x`), path.join(repo, 'data', `.planted-old.upload-${deadPid}-1764400000000`)];
  for (const f of planted) fs.writeFileSync(f, 'partial');
  const p = json(['backup', 'prune', '--repo', repo, '--keep-last', '100']);
  t.equal(p.code, 0, `prune: ${p.stderr}`);
  for (const f of planted) t.notOk(fs.existsSync(f), `${path.basename(f)} removed by prune`);
  t.ok(p.body.swept_objects + p.body.removed_leftovers.length > 0, `leftovers collected: ${p.body.swept_objects} objects, ${p.body.removed_leftovers.length} locks/temp files`);
  const again = json(['backup', 'prune', '--repo', repo, '--keep-last', '100']);
  t.equal(again.body.swept_objects, 0, 'nothing left for a second prune');
  t.same(fs.readdirSync(path.join(repo, 'locks')), [], 'no lock left');
  const uploadTemps = (fs.readdirSync(repo, { recursive: true }) as string[]).filter((n) => /(^|\/)\.[^/]+\.upload-\d+-/.test(n));
  t.same(uploadTemps, [], 'no temp file of a killed upload left');
  t.equal(cli(['--data-dir', data, 'backup', 'create', '--repo', repo]).code, 0, 'create works after the kills');

  for (let i = 0; i < 10; i++) {
    for (let j = 0; j < 2; j++) {
      await grow(data, 5e4, `p${i}${j}`);
      t.equal(cli(['--data-dir', data, 'backup', 'create', '--repo', repo]).code, 0);
    }
    const c = spawnCli(['backup', 'prune', '--repo', repo, '--keep-last', '2']);
    await sleep(250 + ((i * 61) % 400));
    c.kill('SIGKILL');
    await exited(c);
    const vi = json(['backup', 'verify', '--repo', repo]);
    t.equal(vi.body.status, 'VALID', `verifies after killed prune ${i}`);
  }
  const final = json(['backup', 'prune', '--repo', repo, '--keep-last', '2']);
  t.equal(final.code, 0, 'a prune after the kills');
  const left = json(['backup', 'list', '--repo', repo]);
  t.equal(left.body.snapshots.length, 2);
  t.equal(left.body.repository_objects, final.body.kept_objects, 'every remaining object is referenced');
  t.equal(json(['backup', 'verify', '--repo', repo, '--deep']).body.status, 'VALID');
});

t.test('create and prune at the same time: no snapshot loses an object', async (t) => {
  const dir = tmp(t);
  const repo = path.join(dir, 'repo');
  const data = path.join(dir, 'data');
  await grow(data, 1e6, 'x');
  t.equal(cli(['--data-dir', data, 'backup', 'create', '--repo', repo]).code, 0);
  const codes: number[] = [];
  for (let i = 0; i < 6; i++) {
    await grow(data, 5e4, `x${i}`);
    const c = spawnCli(['--data-dir', data, 'backup', 'create', '--repo', repo]);
    await sleep((i % 3) * 150);
    const p = spawnCli(['backup', 'prune', '--repo', repo, '--keep-last', '2']);
    codes.push((await exited(c)) ?? -1, (await exited(p)) ?? -1);
  }
  t.ok(codes.every((c) => c === 0 || c === 3), `every run succeeded or found the repository locked (exit 3): ${codes}`);
  t.ok(codes.some((c) => c === 0), 'some ran');
  const v = json(['backup', 'verify', '--repo', repo, '--deep']);
  t.equal(v.body.status, 'VALID', `every remaining snapshot verifies, deep: ${JSON.stringify(v.body.problems ?? v.body.error ?? v.stderr)}`);
  // a live lock refuses prune with GUTS_REPO_LOCKED
  fs.writeFileSync(path.join(repo, 'locks', 'create-other-1-aaaaaaaa.json'), JSON.stringify({ kind: 'create', hostname: 'another-host', pid: 1, created: new Date().toISOString(), refreshed: new Date().toISOString() }));
  const locked = json(['backup', 'prune', '--repo', repo, '--keep-last', '1', '--lock-wait', '0']);
  t.equal(locked.code, 3, 'exit 3');
  t.equal(locked.body.error?.code, 'GUTS_REPO_LOCKED');
  // one of another host not refreshed for 30+ minutes is stale
  fs.writeFileSync(path.join(repo, 'locks', 'create-other-1-aaaaaaaa.json'), JSON.stringify({ kind: 'create', hostname: 'another-host', pid: 1, created: '2026-01-01T00:00:00Z', refreshed: '2026-01-01T00:00:00Z' }));
  const ok = json(['backup', 'prune', '--repo', repo, '--keep-last', '1']);
  t.equal(ok.code, 0, 'stale lock removed');
  t.ok(ok.body.removed_leftovers.some((p: string) => p.includes('create-other-1')), 'and reported');
});

t.test('S3 repository (s3rver)', async (t) => {
  const s3 = await startS3(['guts-backups']);
  t.teardown(() => s3.stop());
  const dir = tmp(t);
  const { b } = await roundTrip(t, 's3://guts-backups/repo', s3.env, dir, () => listS3(s3.env));
  t.ok(b.snapshot, 'S3 round trip');
});

/** Object keys of the S3 repository, through the Location interface. */
function listS3(env: Record<string, string>): string[] {
  const r = spawnSync(
    process.execPath,
    ['-e', `const {openLocation}=require(${JSON.stringify(path.resolve(__dirname, '../../dist/src/location'))});const l=openLocation('s3://guts-backups/repo');l.list().then(o=>{console.log(JSON.stringify(o.map(x=>x.key)));l.close()})`],
    { env: { ...process.env, ...env }, encoding: 'utf8' },
  );
  return JSON.parse(r.stdout);
}
