// Backup repository (issue 15): incremental snapshots vs a full one, growth
// over rounds of ~1% new objects with the store's own compactions running,
// restic as a peer (first backup and each round, time and repository
// growth), and restore from the repository vs from a single archive.
//
// Every round adds ~1% of the store's object bytes as new text blobs (random
// hex lines: new content, as a git host receives it), flushes, and keeps the
// store open until RocksDB's background compactions are done, as on a node.
import { spawn, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';

import { GutsStore } from '../src/store';
import { BenchResult, cli, cliStartup, loadAverage, machineInfo, q, ROOT, round, Sample, stat, SubjectResult, timeShell } from './lib';
import { BenchEnv, dirBytes } from './suites';

function rmrf(p: string): void {
  fs.rmSync(p, { recursive: true, force: true });
}

function hasRestic(): boolean {
  return spawnSync('restic', ['version'], { stdio: 'ignore' }).status === 0;
}

/** Adds about `bytes` of new text blobs, flushes, lets compactions run. */
async function addObjects(dataDir: string, bytes: number, tag: string): Promise<void> {
  const store = await GutsStore.open(dataDir);
  try {
    await store.putRepo('bench/incremental');
    let total = 0;
    let n = 0;
    while (total < bytes) {
      const batch = [];
      for (let i = 0; i < 64; i++, n++) {
        const data = Buffer.from(`// ${tag} ${n}\n` + Array.from({ length: 30 }, (_, j) => `${j}\t${crypto.randomBytes(16).toString('hex')} ${tag}\n`).join(''));
        batch.push({ type: 'blob' as const, data });
        total += data.length;
      }
      await store.putObjects('bench/incremental', batch);
    }
    await store.flush();
    // RocksDB's background compactions (closing the store would abort them): wait until the SST set
    // (names and sizes) is stable for 2 s, at most 120 s
    const sig = () =>
      fs
        .readdirSync(path.join(dataDir, 'db'))
        .filter((n) => n.endsWith('.sst'))
        .map((n) => `${n}:${fs.statSync(path.join(dataDir, 'db', n), { throwIfNoEntry: false })?.size ?? 'gone'}`)
        .sort()
        .join(',');
    let last = sig();
    let stable = 0;
    for (let waited = 0; waited < 120e3 && stable < 4; waited += 500) {
      await new Promise((r) => setTimeout(r, 500));
      const now = sig();
      stable = now === last ? stable + 1 : 0;
      last = now;
    }
  } finally {
    await store.close();
  }
}

function createJson(dataDir: string, repo: string, outBase = repo): { sample: Sample; out: Record<string, number | string> } {
  const outFile = `${outBase}.last.json`;
  const sample = timeShell(`${cli('--data-dir', dataDir, 'backup', 'create', '--repo', repo, '--json')} > ${q(outFile)}`, { GUTS_CONFIG: '/dev/null' });
  const out = JSON.parse(fs.readFileSync(outFile, 'utf8')) as Record<string, number | string>;
  fs.rmSync(outFile, { force: true });
  return { sample, out };
}

/**
 * The floor of any snapshot of this store by a fresh process: Node start, the addon's load, opening the
 * stopped store read-only (both RocksDB instances, as `backup create --repo` does) and checkpointing it,
 * then closing it and removing the checkpoint. Whatever the repository does on top, `backup create --repo` cannot take less.
 */
function floorSample(dataDir: string): Sample {
  const storeModule = path.join(__dirname, '..', 'src', 'store');
  const code =
    `const {GutsStore}=require(${JSON.stringify(storeModule)});const fs=require('fs');` +
    `(async()=>{const d=process.argv[1];const s=await GutsStore.open(d,{readOnly:true});const cp=d+'/checkpoints/bench-floor-'+process.pid;` +
    `fs.mkdirSync(d+'/checkpoints',{recursive:true});try{await s.native.checkpoint(cp,{db:true,consensus:true});}finally{await s.close();fs.rmSync(cp,{recursive:true,force:true});}})()`;
  return timeShell(`${q(process.execPath)} -e ${q(code)} ${q(dataDir)}`);
}

function nodeSample(): Sample {
  return timeShell(`${q(process.execPath)} -e 0`);
}

const RESTIC_ENV = { RESTIC_PASSWORD: 'bench', RESTIC_CACHE_DIR: '' };

function resticInit(repo: string): void {
  rmrf(repo);
  const r = spawnSync('restic', ['init', '--repo', repo], { env: { ...process.env, ...RESTIC_ENV }, stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) throw new Error(`restic init failed: ${r.stderr}`);
}

function resticBackup(repo: string, dataDir: string, cacheDir: string): Sample {
  return timeShell(`restic --repo ${q(repo)} --cache-dir ${q(cacheDir)} backup --quiet ${q(dataDir)}`, RESTIC_ENV);
}

function summary(label: string, samples: Sample[], extra: Record<string, number | string>): SubjectResult {
  return {
    label,
    command: '',
    wall_s: stat(samples.map((s) => s.wall_s)),
    cpu_s: stat(samples.map((s) => s.cpu_s)),
    peak_rss_mb: stat(samples.map((s) => s.peak_rss_mb)),
    extra,
  };
}

/**
 * The incremental case on S3 (s3rver, a real S3-compatible server in its own process): a repository on
 * s3://bench/repo holding a snapshot of the store, then `rounds` rounds of ~1% new objects, each timing the
 * incremental snapshot, a full one of the same store into an empty prefix and the floor, paired as above.
 */
async function s3Rounds(work: string, data: string, onePercent: number, rounds: number): Promise<{ rows: Array<Record<string, number>>; note?: string }> {
  const main = path.join(ROOT, 'test', 'lib', 's3rver-main.js');
  if (!fs.existsSync(main)) return { rows: [], note: `S3 rounds skipped: ${main} not found` };
  const server = spawn(process.execPath, [main, path.join(work, 's3'), 'bench'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const saved = { ...process.env };
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('s3rver did not start within 20 s')), 20_000);
      readline.createInterface({ input: server.stdout! }).on('line', (l) => {
        const m = /^listening (\d+)$/.exec(l);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
      server.on('exit', (c) => reject(new Error(`s3rver exited ${c}`)));
    });
    Object.assign(process.env, {
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      AWS_REGION: 'us-east-1',
      AWS_CONFIG_FILE: '/nonexistent',
      AWS_SHARED_CREDENTIALS_FILE: '/nonexistent',
      AWS_ENDPOINT_URL: `http://127.0.0.1:${port}`,
    });
    const scratch = path.join(work, 's3-json');
    createJson(data, 's3://bench/repo', scratch);
    const rows: Array<Record<string, number>> = [];
    for (let r = 0; r < rounds; r++) {
      await addObjects(data, onePercent, `s3round${r}`);
      let inc: ReturnType<typeof createJson> | undefined;
      let full: Sample | undefined;
      let fl: Sample | undefined;
      const steps = [() => (inc = createJson(data, 's3://bench/repo', scratch)), () => (full = createJson(data, `s3://bench/full-${r}`, scratch).sample), () => (fl = floorSample(data))];
      for (const step of r % 2 ? steps : [...steps].reverse()) step();
      rows.push({
        round: r + 1,
        our_seconds: inc!.sample.wall_s,
        full_seconds: full!.wall_s,
        time_vs_full: round(inc!.sample.wall_s / full!.wall_s, 3),
        floor_seconds: fl!.wall_s,
        floor_vs_full: round(fl!.wall_s / full!.wall_s, 3),
        added_bytes: Number(inc!.out.added_bytes),
        reused_files: Number(inc!.out.reused_files),
        added_objects: Number(inc!.out.added_objects),
      });
      process.stdout.write(`#   S3 round ${r + 1}: ${JSON.stringify(rows[rows.length - 1])}\n`);
    }
    return { rows };
  } finally {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
    server.kill('SIGTERM');
  }
}

export async function repoBench(env: BenchEnv, rounds = 10): Promise<BenchResult> {
  const before = loadAverage();
  const work = path.join(env.work, 'repo-bench');
  rmrf(work);
  fs.mkdirSync(work, { recursive: true });
  // a private copy: rounds add objects
  const data = path.join(work, 'data');
  spawnSync('cp', ['-a', env.dataDir, data]);
  const restic = hasRestic();
  const notes: string[] = [];
  if (!restic) notes.push('restic is not installed (apt-get install restic): peer comparison skipped');
  const resticCache = path.join(work, 'restic-cache');

  // 1. first (full) snapshot into an empty repository, vs restic's first backup, alternated
  const fullSamples: Sample[] = [];
  const resticFirst: Sample[] = [];
  let fullStored = 0;
  let resticFirstBytes = 0;
  const repo = path.join(work, 'repo');
  const rrepo = path.join(work, 'restic');
  for (let i = 0; i < env.runs; i++) {
    rmrf(repo);
    fullSamples.push(createJson(data, repo).sample);
    fullStored = dirBytes(repo);
    if (restic) {
      resticInit(rrepo);
      rmrf(resticCache);
      resticFirst.push(resticBackup(rrepo, data, resticCache));
      resticFirstBytes = dirBytes(rrepo);
    }
  }
  const objectBytes = env.dataset.object_bytes ?? env.dataBytes;
  const onePercent = Math.max(64 << 10, Math.round(objectBytes / 100));

  // 2. rounds of ~1% new objects: our incremental snapshot and restic's, time and growth. Each round also
  // times a full snapshot of the same store into an empty repository and the floor (floorSample), in
  // alternating order right beside the incremental one: on a shared machine the load changes between
  // rounds, so the time ratio is taken per round (paired) and its median reported.
  const fullRepo = path.join(work, 'repo-full');
  const ours: Sample[] = [];
  const fullPaired: Sample[] = [];
  const floors: Sample[] = [];
  const nodes: Sample[] = [];
  const theirs: Sample[] = [];
  const rows: Array<Record<string, number>> = [];
  for (let r = 0; r < rounds; r++) {
    await addObjects(data, onePercent, `round${r}`);
    const sizeBefore = dirBytes(repo);
    let c: ReturnType<typeof createJson> | undefined;
    let grew = 0;
    const incremental = () => {
      c = createJson(data, repo);
      grew = dirBytes(repo) - sizeBefore;
    };
    const full = () => {
      rmrf(fullRepo);
      fullPaired.push(createJson(data, fullRepo).sample);
      rmrf(fullRepo);
    };
    const floor = () => {
      nodes.push(nodeSample());
      floors.push(floorSample(data));
    };
    for (const step of r % 2 ? [incremental, full, floor] : [floor, full, incremental]) step();
    ours.push(c!.sample);
    const fp = fullPaired[fullPaired.length - 1];
    const fl = floors[floors.length - 1];
    const row: Record<string, number> = {
      round: r + 1,
      our_seconds: c!.sample.wall_s,
      our_cpu_seconds: c!.sample.cpu_s,
      full_seconds: fp.wall_s,
      full_cpu_seconds: fp.cpu_s,
      time_vs_full: round(c!.sample.wall_s / fp.wall_s, 3),
      // CPU time (user + sys, all threads): what the load average does not inflate
      cpu_vs_full: round(c!.sample.cpu_s / fp.cpu_s, 3),
      floor_seconds: fl.wall_s,
      floor_cpu_seconds: fl.cpu_s,
      floor_vs_full: round(fl.wall_s / fp.wall_s, 3),
      node_seconds: nodes[nodes.length - 1].wall_s,
      our_growth_bytes: grew,
      reused_files: Number(c!.out.reused_files),
      added_objects: Number(c!.out.added_objects),
    };
    if (restic) {
      const rb = dirBytes(rrepo);
      const s = resticBackup(rrepo, data, resticCache);
      theirs.push(s);
      row.restic_seconds = s.wall_s;
      row.restic_growth_bytes = dirBytes(rrepo) - rb;
    }
    rows.push(row);
    process.stdout.write(`#   round ${r + 1}: ${JSON.stringify(row)}\n`);
  }
  const med = (xs: number[]) => stat(xs).median;
  // rounds where a compaction rewrote much of the store are reported apart (their growth is the rewrite)
  const plain = rows.filter((x) => x.our_growth_bytes <= 5 * onePercent);
  const compacted = rows.filter((x) => x.our_growth_bytes > 5 * onePercent);
  const basis = plain.length ? plain : rows;
  const ourGrowth = med(basis.map((x) => x.our_growth_bytes));
  const ourTime = med(basis.map((x) => x.our_seconds));
  const fullTime = med(fullSamples.map((s) => s.wall_s));
  // paired per round (see above)
  const timeVsFull = med(basis.map((x) => x.time_vs_full));
  const floorVsFull = med(basis.map((x) => x.floor_vs_full));
  // the floor of a snapshot by the CLI: its start-up (`guts-node --version`) instead of a bare `node -e 0`
  const cliFloor = cliStartup() + med(basis.map((x) => Math.max(0, x.floor_seconds - x.node_seconds)));
  const cliFloorVsFull = round(cliFloor / med(basis.map((x) => x.full_seconds)), 3);

  // 3. restore the latest snapshot from the repository vs from a single archive of it
  const archive = path.join(work, 'latest.tar.zst');
  const ex = spawnSync(process.execPath, [path.join(__dirname, '..', '..', 'bin', 'guts-node.js'), 'backup', 'export', '--repo', repo, '--snapshot', 'latest', '--output', archive], { env: { ...process.env, GUTS_CONFIG: '/dev/null' }, stdio: ['ignore', 'ignore', 'pipe'] });
  if (ex.status !== 0) throw new Error(`export failed: ${ex.stderr}`);
  const fromRepo: Sample[] = [];
  const fromArchive: Sample[] = [];
  for (let i = 0; i < env.runs; i++) {
    const t1 = path.join(work, 'restore-repo');
    const t2 = path.join(work, 'restore-archive');
    rmrf(t1);
    rmrf(t2);
    const a = () => fromRepo.push(timeShell(cli('backup', 'restore', '--repo', repo, '--target', t1), { GUTS_CONFIG: '/dev/null' }));
    const b = () => fromArchive.push(timeShell(cli('backup', 'restore', archive, '--target', t2), { GUTS_CONFIG: '/dev/null' }));
    if (i % 2) {
      a();
      b();
    } else {
      b();
      a();
    }
  }

  const subjects: SubjectResult[] = [
    summary('full snapshot (empty repository)', fullSamples, { stored_mb: round(fullStored / 1e6, 1) }),
    summary(`incremental snapshot after ~1% new objects (${rounds} rounds; ratios: median of the ${basis.length} without a large compaction)`, ours, {
      compaction_rounds: compacted.length,
      compaction_growth_mb: compacted.length ? round(med(compacted.map((x) => x.our_growth_bytes)) / 1e6, 1) : 0,
      growth_mb: round(ourGrowth / 1e6, 2),
      total_growth_mb: round(rows.reduce((x, r) => x + r.our_growth_bytes, 0) / 1e6, 1),
      max_growth_mb: round(Math.max(...rows.map((r) => r.our_growth_bytes)) / 1e6, 1),
      growth_vs_full: round(ourGrowth / fullStored, 4),
      time_vs_full: timeVsFull,
      floor_vs_full: floorVsFull,
      cpu_vs_full: med(basis.map((x) => x.cpu_vs_full)),
      floor_cpu_vs_full: med(basis.map((x) => x.floor_cpu_seconds / x.full_cpu_seconds)),
    }),
    summary('full snapshot of the same store each round (empty repository; paired with the incremental one)', fullPaired, {}),
    summary('floor: node + addon load + open and checkpoint of the stopped store, in one process', floors, {
      vs_full: floorVsFull,
      node_s: med(nodes.map((s) => s.wall_s)),
      cli_startup_s: cliStartup(),
      with_cli_s: round(cliFloor, 3),
      with_cli_vs_full: cliFloorVsFull,
    }),
  ];
  if (restic) {
    const rGrowth = med(basis.map((x) => x.restic_growth_bytes));
    const rTime = med(basis.map((x) => x.restic_seconds));
    subjects.push(
      summary('restic backup, first run', resticFirst, { stored_mb: round(resticFirstBytes / 1e6, 1), ours_time_ratio: round(fullTime / med(resticFirst.map((s) => s.wall_s)), 3), ours_size_ratio: round(fullStored / resticFirstBytes, 3) }),
      summary(`restic backup after the same ~1% (${rounds} rounds; ratios as above)`, theirs, {
        compaction_growth_mb: compacted.length ? round(med(compacted.map((x) => x.restic_growth_bytes)) / 1e6, 1) : 0,
        growth_mb: round(rGrowth / 1e6, 2),
        total_growth_mb: round(rows.reduce((x, r) => x + (r.restic_growth_bytes ?? 0), 0) / 1e6, 1),
        max_growth_mb: round(Math.max(...rows.map((r) => r.restic_growth_bytes ?? 0)) / 1e6, 1),
        ours_time_ratio: round(ourTime / rTime, 3),
        ours_growth_ratio: round(ourGrowth / Math.max(1, rGrowth), 3),
        ours_total_growth_ratio: round(rows.reduce((x, r) => x + r.our_growth_bytes, 0) / Math.max(1, rows.reduce((x, r) => x + (r.restic_growth_bytes ?? 0), 0)), 3),
      }),
    );
  }
  // 4. the incremental case on S3
  const s3 = await s3Rounds(work, data, onePercent, 3);
  if (s3.note) notes.push(s3.note);
  if (s3.rows.length) {
    subjects.push({
      label: `S3 (s3rver): incremental snapshot after ~1% new objects (${s3.rows.length} rounds, paired with a full snapshot into an empty prefix)`,
      command: '',
      wall_s: stat(s3.rows.map((x) => x.our_seconds)),
      cpu_s: stat([0]),
      peak_rss_mb: stat([0]),
      ratio_vs_baseline: med(s3.rows.map((x) => x.time_vs_full)),
      extra: {
        full_s: med(s3.rows.map((x) => x.full_seconds)),
        time_vs_full: med(s3.rows.map((x) => x.time_vs_full)),
        floor_vs_full: med(s3.rows.map((x) => x.floor_vs_full)),
        added_mb: round(med(s3.rows.map((x) => x.added_bytes)) / 1e6, 2),
      },
    });
    notes.push(`S3 rounds: ${JSON.stringify(s3.rows)}`);
  }
  const restoreArchive = med(fromArchive.map((s) => s.wall_s));
  subjects.push(
    summary('restore from a single archive of the latest snapshot', fromArchive, { archive_mb: round(fs.statSync(archive).size / 1e6, 1) }),
    summary('restore from the repository (same snapshot)', fromRepo, { vs_archive: round(med(fromRepo.map((s) => s.wall_s)) / restoreArchive, 3) }),
  );
  subjects[1].ratio_vs_baseline = timeVsFull;
  subjects[3].ratio_vs_baseline = floorVsFull;
  notes.push(
    `one round adds ${round(onePercent / 1e6, 2)} MB of new blobs (1% of ${round(objectBytes / 1e6, 1)} MB object bytes), flushed, with the store's compactions running`,
    `time ratios are paired per round (incremental / full snapshot of the same store taken right beside it, median over rounds); the floor (a fresh process opening and checkpointing the store) is ${floorVsFull}× the full snapshot, so no snapshot by a new process can beat that ratio on this store; with the CLI's start-up instead of Node's (${round(cliFloor, 2)} s) it is ${cliFloorVsFull}×`,
    'targets: incremental ≤ 3% of the full snapshot\'s stored bytes and ≤ 10% of its time; ≤ 0.5× restic\'s time at ≤ 1.0× its growth; restore from the repository ≤ 1.1× from an archive',
    `rounds: ${JSON.stringify(rows)}`,
  );
  rmrf(work);
  return {
    name: 'repo',
    baseline: 'full snapshot (empty repository)',
    runs: env.runs,
    data: { one_percent_bytes: onePercent, rounds: rows, s3_rounds: s3.rows, full_stored_bytes: fullStored, restic_first_bytes: resticFirstBytes },
    dataset: env.dataset,
    machine: machineInfo(),
    load: { before, after: loadAverage() },
    columns: [],
    subjects,
    notes,
    date: new Date().toISOString(),
  };
}
