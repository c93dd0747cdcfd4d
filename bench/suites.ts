// The benchmark suites. Each writes bench/results/<name>.json and prints a table.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { GutsStore } from '../src/store';
import { BenchResult, CLI, cli, compare, Dataset, fileSize, loadAverage, machineInfo, mb, q, round, Sample, stat, timeShell } from './lib';

export interface BenchEnv {
  work: string;
  dataDir: string;
  dataBytes: number;
  dataset: Dataset;
  runs: number;
  threads: number;
  /** the git repositories the data dir was imported from (the real-files corpus) */
  repos?: string[];
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

/** What the seeded data dir holds: sizes, object counts, how compressible it is. */
export function describeDataset(dataDir: string, seedSize: string, work: string): Dataset {
  const quick = runJson(['verify', '--data-dir', dataDir, '--json']);
  const full = runJson(['verify', '--data-dir', dataDir, '--full', '--json']);
  const c = quick.counts as { commit: number; tree: number; blob: number; tag: number; repositories: number };
  const d: Dataset = {
    seed_size: seedSize,
    data_dir_bytes: dirBytes(dataDir),
    sst_bytes: Number(quick.sst_bytes),
    sst_files: Number(quick.sst_files),
    objects: { commit: c.commit, tree: c.tree, blob: c.blob, tag: c.tag, total: c.commit + c.tree + c.blob + c.tag },
    repositories: c.repositories,
    object_bytes: Number(full.checked_bytes),
  };
  d.snappy_ratio = round(d.sst_bytes / (d.object_bytes || 1));
  const src = `-C ${q(dataDir)} db consensus`;
  const sizes = execFileSync('bash', ['-o', 'pipefail', '-c', `tar -cf - ${src} | tee >(wc -c > ${q(work)}/tar.bytes) | zstd -3 -T0 -q -c | wc -c; sleep 0.1; cat ${q(work)}/tar.bytes`])
    .toString()
    .trim()
    .split(/\s+/)
    .map(Number);
  d.zstd3_bytes = sizes[0];
  d.tar_bytes = sizes[1];
  d.zstd3_ratio = round(d.zstd3_bytes / d.tar_bytes);
  return d;
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
  const oursGz = path.join(env.work, 'ours.tar.gz');
  const base = path.join(env.work, 'base.tar.zst');
  const gz = path.join(env.work, 'base.tar.gz');
  const src = `-C ${q(env.dataDir)} db consensus`;
  const rawFrames = (file: string) => {
    const r = runJson(['backup', 'create', '--data-dir', env.dataDir, '--output', file, '--force', '--json']);
    return Number(r.raw_frames ?? 0);
  };
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
        label: 'guts-node backup create (.tar.gz)',
        command: cli('backup', 'create', '--data-dir', env.dataDir, '--output', oursGz, '--force'),
        prepare: () => rm(oursGz),
        measure: () => ({ size_mb: mb(fileSize(oursGz)) }),
      },
      {
        label: 'tar -czf',
        command: `tar -czf ${q(gz)} ${src}`,
        prepare: () => rm(gz),
        measure: () => ({ size_mb: mb(fileSize(gz)) }),
      },
      // The floor the sidecar sets: SHA-256 of the archive written (one core, OpenSSL).
      { label: 'openssl dgst -sha256 (own archive)', command: `openssl dgst -sha256 ${q(ours)} > /dev/null` },
      // start-up: Node and the addon (with NODE_EXTRA_CA_CERTS set, Node parses that bundle first)
      { label: 'node + addon load', command: addonLoadCommand() },
      {
        label: 'tar | zstd -T0 -3',
        command: `tar -cf - ${src} | zstd -T0 -3 -q -f -o ${q(base)}`,
        prepare: () => rm(base),
        measure: () => ({ size_mb: mb(fileSize(base)) }),
      },
    ],
    env.runs,
    { data_dir_bytes: env.dataBytes },
    [
      'targets (issue 14): ≤ 0.7× tar|zstd -T0 -3 at ≤ 1.0× its size and ≤ 1.2× openssl dgst -sha256 of its own archive; ' +
        '.tar.gz ≥ 10× faster than tar -czf at ≤ 1.02× its size; peak RSS ≤ 150 MB',
    ],
  );
  const med = (i: number) => r.subjects[i].wall_s!.median;
  const cpu = (i: number) => r.subjects[i].cpu_s!.median;
  const size = (i: number) => Number(r.subjects[i].extra?.size_mb ?? 0);
  const raw = rawFrames(ours);
  r.notes.push(
    `.tar.zst: ${round(med(0) / med(5))}× tar|zstd -3 at ${round(size(0) / size(5), 3)}× its size; ${round(med(0) / med(3))}× openssl dgst of its own archive; ` +
      `raw frames: ${raw}; CLI startup ${machineInfo().cli_startup_s} s`,
    `.tar.zst CPU time: ${round(cpu(0) / cpu(5))}× tar|zstd -3's (less noisy than wall time on a shared machine); ` +
      `floor of the wall ratio (node + addon load, then the sidecar's SHA-256 alone): ${round((med(4) + med(3)) / med(5))}×`,
    `.tar.gz: ${round(med(2) / med(1), 1)}× faster than tar -czf at ${round(size(1) / size(2), 3)}× its size ` +
      `(CPU time ${round(cpu(2) / cpu(1), 1)}×: on a loaded machine the 2-thread writer waits for cores, tar -czf uses one); stored members: ${rawFrames(oursGz)}`,
  );
  r.dataset = env.dataset;
  r.columns = [['size MB', 'size_mb']];
  return r;
}

/** `node -e "require(addon)"` of the build the CLI under test belongs to: Node's start plus the addon's load. */
function addonLoadCommand(): string {
  const addon = path.join(path.dirname(path.dirname(CLI[1])), 'build', 'Release', 'guts_native.node');
  return `${q(process.execPath)} -e ${q(`require(${JSON.stringify(addon)})`)}`;
}

/**
 * Node + the addon, a read-only open, then the object scan of verify --full
 * without the SHA-1 (debugDecodeObjects, a test hook): what reading and
 * decompressing every object costs on `threads` threads, start-up included.
 */
function decodeFloorCommand(dataDir: string, threads: number): string {
  const native = path.join(path.dirname(path.dirname(CLI[1])), 'dist', 'src', 'native.js');
  const js =
    `const { native } = require(${JSON.stringify(native)}); (async () => {` +
    ` const s = new native.Store(${JSON.stringify(dataDir)}, { readOnly: true, create: false, db: true, consensus: false, rocksdbOptions: 'max_file_opening_threads=1' });` +
    ` await s.open(); await native.debugDecodeObjects(s, { threads: ${threads} }).promise; await s.close(); })()`;
  return `GUTS_TEST_HOOKS=1 ${q(process.execPath)} -e ${q(js)}`;
}

/** A 1 MiB seeded store (and its archive) under work: what a command costs beyond its start-up. */
function tinyStore(env: BenchEnv): { dir: string; archive: string } {
  const dir = path.join(env.work, 'tiny-data');
  const archive = path.join(env.work, 'tiny.tar.zst');
  if (!fs.existsSync(archive)) {
    fs.rmSync(dir, { recursive: true, force: true });
    timeShell(cli('--data-dir', dir, 'dev', 'seed', '--size', '1MiB', '--repos', '1'));
    timeShell(cli('backup', 'create', '--data-dir', dir, '--output', archive, '--force'));
  }
  return { dir, archive };
}

export function verifyBench(env: BenchEnv): BenchResult {
  const archive = path.join(env.work, 'ours.tar.zst');
  if (!fs.existsSync(archive)) timeShell(cli('backup', 'create', '--data-dir', env.dataDir, '--output', archive, '--force'));
  // The start-up of this very command path: verify of a 1 MiB store's archive.
  const tiny = tinyStore(env).archive;
  const r = compare(
    'backup-verify',
    [
      { label: 'guts-node backup verify', command: cli('backup', 'verify', archive) },
      { label: 'sha256sum -c (sidecar only)', command: `cd ${q(env.work)} && sha256sum -c --quiet ${q(path.basename(archive) + '.sha256')}` },
      { label: 'zstd -t', command: `zstd -t -q ${q(archive)}` },
      // start-up: the floor (Node, then Node + the addon), the CLI, and this command on a tiny archive
      { label: 'node -e 0', command: `${q(process.execPath)} -e 0` },
      { label: 'node + addon load', command: addonLoadCommand() },
      { label: 'guts-node --version', command: cli('--version') },
      { label: 'guts-node backup verify (1 MiB store)', command: cli('backup', 'verify', tiny) },
      // The floor of any check of the sidecar: one core of OpenSSL SHA-256 (SHA-NI), what ours uses.
      { label: 'openssl dgst -sha256 (SHA-256 alone)', command: `openssl dgst -sha256 ${q(archive)} > /dev/null` },
    ],
    env.runs,
    { archive_bytes: fileSize(archive) },
    ['target (issue 14): backup verify ≤ 1.15× openssl dgst -sha256 of the archive (it also decodes every frame and checks every file XXH3-128)'],
  );
  const med = (i: number) => r.subjects[i].wall_s!.median;
  const sha = med(7);
  const startup = med(6);
  const floor = med(4);
  const cpu = (i: number) => r.subjects[i].cpu_s!.median;
  r.notes.push(
    `CPU (less noisy on a shared machine): backup verify ${cpu(0)} s, of which start-up (1 MiB store) ${cpu(6)} s; openssl dgst ${cpu(7)} s; node + addon ${cpu(4)} s`,
    `backup verify ${round(med(0) / sha, 2)}× openssl dgst -sha256 (target ≤ 1.15×); without its start-up (verify of a 1 MiB store, ${startup} s) ` +
      `${round((med(0) - startup) / sha, 2)}×; zstd -t ${round(med(2) / sha, 2)}×`,
    `start-up: node -e 0 ${med(3)} s, + addon ${floor} s (the floor), guts-node --version ${med(5)} s, backup verify of a 1 MiB store ${startup} s; ` +
      `floor of this ratio (node + addon, then SHA-256 alone): ${round((floor + sha) / sha, 2)}×`,
  );
  r.dataset = env.dataset;
  return r;
}

export function restoreBench(env: BenchEnv): BenchResult {
  const archive = path.join(env.work, 'ours.tar.zst');
  if (!fs.existsSync(archive)) timeShell(cli('backup', 'create', '--data-dir', env.dataDir, '--output', archive, '--force'));
  const t1 = path.join(env.work, 'restore-ours');
  const t2 = path.join(env.work, 'restore-tar');
  const r = compare(
    'restore',
    [
      {
        label: 'guts-node backup restore',
        command: cli('backup', 'restore', archive, '--target', t1),
        prepare: () => rm(t1),
      },
      // decoding alone, no writes: with the CLI startup, the CPU floor of a restore
      { label: 'zstd -d > /dev/null', command: `zstd -d -q -c ${q(archive)} > /dev/null` },
      { label: 'node + addon load', command: addonLoadCommand() },
      {
        label: 'tar -I zstd -xf && sync',
        command: `mkdir -p ${q(t2)} && tar -I zstd -xf ${q(archive)} -C ${q(t2)} && sync`,
        prepare: () => rm(t2),
      },
    ],
    env.runs,
    { archive_bytes: fileSize(archive) },
    [
      'target (issue 14): ≤ 0.6× tar -I zstd -xf && sync (ours also fsyncs every file and checks every byte against the manifest; ' +
        '`sync` also flushes whatever else the machine has dirty, so the baseline varies with the other load)',
    ],
  );
  const med = (i: number) => r.subjects[i].wall_s!.median;
  const cpu = (i: number) => r.subjects[i].cpu_s!.median;
  r.notes.push(
    `restore: ${round(med(0) / med(3), 2)}× tar -I zstd -xf && sync (CPU time ${round(cpu(0) / cpu(3), 2)}×); CLI startup ${machineInfo().cli_startup_s} s`,
    `floor of the wall ratio (node + addon load, then decoding alone on one core, no writes, no fsync): ${round((med(2) + med(1)) / med(3), 2)}×`,
  );
  r.dataset = env.dataset;
  return r;
}

function opensslSha1Rate(): number {
  // bytes/s of one core at 16 KiB blocks
  const out = execFileSync('openssl', ['speed', '-evp', 'sha1', '-bytes', '16384', '-seconds', '2'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
  const line = out.split('\n').find((l) => /^sha1\s/i.test(l.trim()));
  const kbs = Number(line?.trim().split(/\s+/).pop()?.replace(/k$/, ''));
  return kbs * 1000;
}

/** CPU seconds of `openssl speed -evp <alg>` to hash `bytes` on one core (16 KiB blocks). */
function opensslSeconds(alg: string, bytes: number): number {
  const out = execFileSync('openssl', ['speed', '-evp', alg, '-bytes', '16384', '-seconds', '1'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
  const line = out.split('\n').find((l) => l.trim().toLowerCase().startsWith(alg));
  const kbs = Number(line?.trim().split(/\s+/).pop()?.replace(/k$/, ''));
  return bytes / (kbs * 1000);
}

export async function hashBench(env: BenchEnv): Promise<BenchResult> {
  const before = loadAverage();
  const counts = runJson(['verify', '--data-dir', env.dataDir, '--full', '--json']);
  const bytes = Number(counts.checked_bytes ?? 0);
  const objects = Number(counts.objects ?? 0);
  const sha1 = opensslSha1Rate() * os.cpus().length;
  // git fsck --full on the same objects: the corpus's own repositories (real
  // files), else a seeded store's largest repository exported (objects/s).
  let fsckCommand: string | undefined;
  let fsckObjects = 0;
  let fsckLabel = '';
  if (env.repos?.length) {
    fsckCommand = env.repos.map((r) => `git -C ${q(r)} fsck --full --no-progress --no-dangling`).join(' && ');
    fsckObjects = objects;
    fsckLabel = `git fsck --full, the ${env.repos.length} corpus repositories one after another`;
  } else {
    const exportDir = path.join(env.work, 'export.git');
    fs.rmSync(exportDir, { recursive: true, force: true });
    const store = await GutsStore.open(env.dataDir, { readOnly: true });
    const repoName = (await store.listRepos())[0]?.name ?? 'none/none';
    await store.close();
    const ex = spawnSync(process.execPath, [path.resolve(__dirname, '..', '..', 'bin', 'guts-node.js'), 'export', '--data-dir', env.dataDir, '--repo', repoName, exportDir]);
    if (ex.status === 0) {
      fsckObjects = Number(execFileSync('git', ['-C', exportDir, 'count-objects', '-v']).toString().match(/in-pack: (\d+)/)?.[1] ?? 0);
      fsckCommand = `git -C ${q(exportDir)} fsck --full --no-progress`;
      fsckLabel = `git fsck --full of ${repoName} (exported)`;
    }
  }
  const threadCounts = [1, env.threads];
  const commands = threadCounts.map((t) => cli('verify', '--data-dir', env.dataDir, '--full', '--threads', String(t)));
  // the serial part: start-up and store open (verify --full of a 1 MiB store), and the floor of it
  const tiny = tinyStore(env).dir;
  commands.push(cli('verify', '--data-dir', tiny, '--full'), addonLoadCommand());
  if (fsckCommand) commands.push(fsckCommand);
  // A machine that sets NODE_EXTRA_CA_CERTS (e.g. for a TLS proxy) makes every
  // Node start parse those certificates first, before any of our code runs:
  // measured apart, it is part of the serial floor git fsck does not pay.
  const noCa = process.env.NODE_EXTRA_CA_CERTS ? commands.push(`env -u NODE_EXTRA_CA_CERTS ${addonLoadCommand()}`) - 1 : -1;
  // the floor: start-up, open, then reading and decompressing every object on every core (no SHA-1)
  const decode = commands.push(decodeFloorCommand(env.dataDir, env.threads)) - 1;
  const samples = commands.map(() => [] as Sample[]);
  for (let i = 0; i < env.runs; i++) {
    for (let k = 0; k < commands.length; k++) {
      const j = (k + i) % commands.length; // alternate the order
      samples[j].push(timeShell(commands[j]));
    }
  }
  const startup = machineInfo().cli_startup_s;
  const subjects = commands.map((command, j) => {
    const w = stat(samples[j].map((x) => x.wall_s));
    const n = j < threadCounts.length ? objects : j === threadCounts.length + 2 && fsckCommand ? fsckObjects : 0;
    const labels = [`verify --full of a 1 MiB store (start-up)`, 'node + addon load (the floor)', fsckLabel];
    return {
      label:
        j < threadCounts.length
          ? `verify --full, ${threadCounts[j]} thread${threadCounts[j] > 1 ? 's' : ''}`
          : j === noCa
            ? 'node + addon load without NODE_EXTRA_CA_CERTS'
            : j === decode
              ? `start-up + open + decode only (no SHA-1), ${env.threads} threads`
              : labels[j - threadCounts.length],
      command,
      wall_s: w,
      cpu_s: stat(samples[j].map((x) => x.cpu_s)),
      peak_rss_mb: stat(samples[j].map((x) => x.peak_rss_mb)),
      ratio_vs_baseline: j < threadCounts.length ? round(bytes / w.median / sha1, 2) : undefined,
      extra: {
        MB_per_s: j < threadCounts.length ? round(bytes / w.median / 1e6, 0) : '',
        MB_per_s_without_startup: j < threadCounts.length ? round(bytes / (w.median - startup) / 1e6, 0) : '',
        objects_per_s: n ? round(n / w.median, 0) : '',
      },
    };
  });
  const one = subjects[0];
  const best = subjects[threadCounts.length - 1];
  const serial = subjects[threadCounts.length].wall_s.median;
  const floor = subjects[threadCounts.length + 1].wall_s.median;
  const fsck = fsckCommand ? subjects[threadCounts.length + 2] : undefined;
  // Amdahl: the best scaling the measured serial part (start-up, open) allows
  const amdahl = (s0: number) => round(one.wall_s.median / (s0 + Math.max(0, one.wall_s.median - s0) / env.threads), 2);
  // What the work costs at the least: SHA-1 of every object byte on every
  // core (OpenSSL, SHA-NI where the CPU has it) plus the CLI start.
  const sha1Floor = bytes / sha1;
  const sha1One = opensslSeconds('sha1', bytes);
  // start-up, open, read + decompress on every core (measured), then SHA-1 on every core (openssl speed)
  const decodeFloor = subjects[decode].wall_s.median + sha1Floor;
  return {
    name: 'object-rehash',
    baseline: `openssl speed -evp sha1 (16 KiB) × ${os.cpus().length}`,
    ratio_desc: `MB/s / openssl speed -evp sha1 (16 KiB) × ${os.cpus().length} = ${round(sha1 / 1e6, 0)} MB/s`,
    runs: env.runs,
    data: { bytes, objects },
    dataset: env.dataset,
    machine: machineInfo(),
    load: { before, after: loadAverage() },
    columns: [
      ['MB/s', 'MB_per_s'],
      ['MB/s w/o startup', 'MB_per_s_without_startup'],
      ['objects/s', 'objects_per_s'],
    ],
    subjects,
    notes: [
      `openssl sha1 × nproc: ${round(sha1 / 1e6, 0)} MB/s; ours ${best.extra.MB_per_s} MB/s = ${best.ratio_vs_baseline}×; ` +
        `without the ${startup} s CLI startup ${round((Number(best.extra.MB_per_s_without_startup) * 1e6) / sha1, 2)}×`,
      `scaling 1 → ${env.threads} threads: ${round(one.wall_s.median / best.wall_s.median, 2)}× (target ≥ 1.8×); the most the serial part allows: ` +
        `${amdahl(serial)}× (start-up + open, ${serial} s), ${amdahl(floor)}× (node + addon alone, ${floor} s); ` +
        `1 thread: ${one.cpu_s.median} s CPU of which SHA-1 alone is ${round(sha1One, 2)} s (openssl speed, one core)` +
        (noCa >= 0
          ? `; this machine sets NODE_EXTRA_CA_CERTS: every Node start parses it, ` +
            `${round(floor - subjects[noCa].wall_s.median, 3)} s of the ${floor} s floor (${round(subjects[threadCounts.length + 1].cpu_s.median - subjects[noCa].cpu_s.median, 3)} s CPU); ` +
            `without it the serial part allows ${amdahl(serial - (floor - subjects[noCa].wall_s.median))}×`
          : ''),
      `decode floor: start-up + open + read and decompress every object on ${env.threads} threads (no SHA-1) ${subjects[decode].wall_s.median} s ` +
        `(${subjects[decode].cpu_s.median} s CPU), + SHA-1 on every core ${round(sha1Floor, 2)} s = ${round(decodeFloor, 2)} s; ours ${best.wall_s.median} s ` +
        `(${best.cpu_s.median} s CPU, of which the decode run's ${subjects[decode].cpu_s.median} s + SHA-1 ${round(sha1One, 2)} s)`,
      fsck && env.repos?.length
        ? `CPU (less noisy on a shared machine): ${fsckLabel} ${fsck.cpu_s.median} s, ours ${one.cpu_s.median} s (1 thread), ${best.cpu_s.median} s (${env.threads} threads): ` +
          `${round(fsck.cpu_s.median / best.cpu_s.median, 1)}× less CPU`
        : fsck
          ? `CPU per object (less noisy on a shared machine): ${fsckLabel} ${round((fsck.cpu_s.median / fsckObjects) * 1e6, 1)} µs, ` +
            `ours ${round((best.cpu_s.median / objects) * 1e6, 1)} µs (start-up included in both)`
          : 'no git fsck CPU figure',
      fsck
        ? env.repos?.length
          ? `${fsckLabel}: ${fsck.wall_s.median} s; ours ${best.wall_s.median} s = ${round(fsck.wall_s.median / best.wall_s.median, 1)}× faster (target ≥ 10×); ` +
            `floor (node + addon, then SHA-1 alone on every core): ${round(floor + sha1Floor, 2)} s = ${round(fsck.wall_s.median / (floor + sha1Floor), 1)}×; ` +
            `with the decompression: ${round(decodeFloor, 2)} s = ${round(fsck.wall_s.median / decodeFloor, 1)}×`
          : `${fsckLabel}: ${fsck.extra.objects_per_s} objects/s; ours ${best.extra.objects_per_s} objects/s = ` +
            `${round(Number(best.extra.objects_per_s) / Number(fsck.extra.objects_per_s), 1)}× (target ≥ 10×)`
        : 'git fsck comparison skipped (export failed)',
    ],
    date: new Date().toISOString(),
  };
}
