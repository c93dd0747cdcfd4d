// The benchmark suites. Each writes bench/results/<name>.json and prints a table.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { GutsStore } from '../src/store';
import { BenchResult, cli, compare, fileSize, machineInfo, mb, q, round, stat, timeShell } from './lib';

export interface BenchEnv {
  work: string;
  dataDir: string;
  dataBytes: number;
  runs: number;
  threads: number;
}

function rm(p: string): void {
  fs.rmSync(p, { recursive: true, force: true });
  fs.rmSync(p + '.sha256', { force: true });
}

function runJson(args: string[]): Record<string, unknown> {
  const out = execFileSync(process.execPath, [path.resolve(__dirname, '..', '..', 'bin', 'guts-node.js'), ...args], { maxBuffer: 64 << 20 });
  return JSON.parse(out.toString()) as Record<string, unknown>;
}

export function seed(dataDir: string, size: string): number {
  fs.rmSync(dataDir, { recursive: true, force: true });
  timeShell(cli('dev', 'seed', '--data-dir', dataDir, '--size', size, '--repos', '50', '--seed', '1'));
  return dirBytes(dataDir);
}

export function dirBytes(dir: string): number {
  let total = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) total += dirBytes(p);
    else if (e.isFile()) total += fs.statSync(p).size;
  }
  return total;
}

export function backupBench(env: BenchEnv): BenchResult {
  const ours = path.join(env.work, 'ours.tar.zst');
  const base = path.join(env.work, 'base.tar.zst');
  const gz = path.join(env.work, 'base.tar.gz');
  const src = `-C ${q(env.dataDir)} db consensus`;
  const r = compare(
    'backup',
    [
      {
        label: 'guts-node backup create (.tar.zst)',
        command: cli('backup', 'create', '--data-dir', env.dataDir, '--output', ours, '--force'),
        prepare: () => rm(ours),
        measure: () => ({ size_mb: mb(fileSize(ours)) }),
      },
      {
        label: 'tar -czf',
        command: `tar -czf ${q(gz)} ${src}`,
        prepare: () => rm(gz),
        measure: () => ({ size_mb: mb(fileSize(gz)) }),
      },
      {
        label: 'tar | zstd -T0 -3',
        command: `tar -cf - ${src} | zstd -T0 -3 -q -f -o ${q(base)}`,
        prepare: () => rm(base),
        measure: () => ({ size_mb: mb(fileSize(base)) }),
      },
    ],
    env.runs,
    { data_dir_bytes: env.dataBytes },
    ['targets: ≤ 0.8× tar|zstd -T0 -3 at ≤ 1.02× its size; ≥ 10× faster than tar -czf; peak RSS ≤ 150 MB'],
  );
  const size = (i: number) => Number(r.subjects[i].extra?.size_mb ?? 0);
  r.notes.push(`size ratio vs tar|zstd -3: ${round(size(0) / size(2))}; speed vs tar -czf: ${round(r.subjects[1].wall_s.median / r.subjects[0].wall_s.median, 1)}× faster`);
  return r;
}

export function verifyBench(env: BenchEnv): BenchResult {
  const archive = path.join(env.work, 'ours.tar.zst');
  if (!fs.existsSync(archive)) timeShell(cli('backup', 'create', '--data-dir', env.dataDir, '--output', archive, '--force'));
  return compare(
    'backup-verify',
    [
      { label: 'guts-node backup verify', command: cli('backup', 'verify', archive) },
      { label: 'sha256sum -c (sidecar only)', command: `cd ${q(env.work)} && sha256sum -c --quiet ${q(path.basename(archive) + '.sha256')}` },
      { label: 'zstd -t', command: `zstd -t -q ${q(archive)}` },
    ],
    env.runs,
    { archive_bytes: fileSize(archive) },
    ['target: backup verify ≤ 0.7× zstd -t (it also checks the SHA-256 sidecar and every file XXH3-128)'],
  );
}

export function restoreBench(env: BenchEnv): BenchResult {
  const archive = path.join(env.work, 'ours.tar.zst');
  const t1 = path.join(env.work, 'restore-ours');
  const t2 = path.join(env.work, 'restore-tar');
  return compare(
    'restore',
    [
      {
        label: 'guts-node backup restore',
        command: cli('backup', 'restore', archive, '--target', t1),
        prepare: () => rm(t1),
      },
      {
        label: 'tar -I zstd -xf && sync',
        command: `mkdir -p ${q(t2)} && tar -I zstd -xf ${q(archive)} -C ${q(t2)} && sync`,
        prepare: () => rm(t2),
      },
    ],
    env.runs,
    { archive_bytes: fileSize(archive) },
    ['target: ≤ 0.9× tar -I zstd -xf + sync (ours also fsyncs every file and checks every byte against the manifest)'],
  );
}

function opensslSha1Rate(): number {
  // bytes/s of one core at 16 KiB blocks
  const out = execFileSync('openssl', ['speed', '-evp', 'sha1', '-bytes', '16384', '-seconds', '2'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
  const line = out.split('\n').find((l) => /^sha1\s/i.test(l.trim()));
  const kbs = Number(line?.trim().split(/\s+/).pop()?.replace(/k$/, ''));
  return kbs * 1000;
}

export async function hashBench(env: BenchEnv): Promise<BenchResult> {
  const per: Array<{ threads: number; wall: number[]; bytes: number; objects: number }> = [];
  for (const threads of [1, env.threads]) {
    const wall: number[] = [];
    let bytes = 0;
    let objects = 0;
    for (let i = 0; i < env.runs; i++) {
      const t0 = process.hrtime.bigint();
      const r = runJson(['verify', '--data-dir', env.dataDir, '--full', '--json', '--threads', String(threads)]);
      wall.push(Number(process.hrtime.bigint() - t0) / 1e9);
      bytes = Number(r.bytes ?? 0);
      objects = Number(r.objects ?? 0);
    }
    per.push({ threads, wall, bytes, objects });
  }
  const sha1 = opensslSha1Rate() * os.cpus().length;
  // git fsck on an exported repository holding the same objects (largest repo)
  const exportDir = path.join(env.work, 'export.git');
  fs.rmSync(exportDir, { recursive: true, force: true });
  const store = await GutsStore.open(env.dataDir, { readOnly: true });
  const repoName = (await store.listRepos())[0]?.name ?? 'none/none';
  await store.close();
  let fsck: { objects_per_s: number; wall_s: number } | null = null;
  const ex = spawnSync(process.execPath, [path.resolve(__dirname, '..', '..', 'bin', 'guts-node.js'), 'export', '--data-dir', env.dataDir, '--repo', repoName, exportDir]);
  if (ex.status === 0) {
    const count = Number(execFileSync('git', ['-C', exportDir, 'count-objects', '-v']).toString().match(/in-pack: (\d+)/)?.[1] ?? 0);
    const s = timeShell(`git -C ${q(exportDir)} fsck --full --no-progress`);
    fsck = { objects_per_s: round(count / s.wall_s, 0), wall_s: s.wall_s };
  }
  const subjects = per.map((p) => {
    const w = stat(p.wall);
    return {
      label: `verify --full, ${p.threads} thread${p.threads > 1 ? 's' : ''}`,
      command: cli('verify', '--data-dir', env.dataDir, '--full', '--threads', String(p.threads)),
      wall_s: w,
      peak_rss_mb: { median: 0, min: 0, max: 0 },
      extra: { MB_per_s: round(p.bytes / w.median / 1e6, 1), objects_per_s: round(p.objects / w.median, 0) },
    };
  });
  const best = subjects[subjects.length - 1];
  return {
    name: 'object-rehash',
    baseline: `openssl speed -evp sha1 (16 KiB) × ${os.cpus().length}`,
    runs: env.runs,
    data: { bytes: per[0].bytes, objects: per[0].objects },
    machine: machineInfo(),
    subjects,
    notes: [
      `openssl sha1 × nproc: ${round(sha1 / 1e6, 0)} MB/s; ours ${best.extra.MB_per_s} MB/s = ${round((Number(best.extra.MB_per_s) * 1e6) / sha1, 2)}× (target ≥ 0.5×)`,
      `scaling 1 → ${env.threads} threads: ${round(subjects[0].wall_s.median / best.wall_s.median, 2)}×`,
      fsck
        ? `git fsck --full on ${repoName}: ${fsck.objects_per_s} objects/s; ours ${best.extra.objects_per_s} objects/s = ${round(Number(best.extra.objects_per_s) / fsck.objects_per_s, 1)}× (target ≥ 3×)`
        : 'git fsck comparison skipped (export failed)',
    ],
    date: new Date().toISOString(),
  };
}
