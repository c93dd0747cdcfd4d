// The store suite (issue 14): the SST format of the store, LZ4 above / ZSTD at
// the bottommost level ("default"), against the format every store had before
// (snappy everywhere), on the same objects, in the same run:
//   - write throughput of the node's batch API (putObjects, ~8 MiB batches,
//     ids from all over the key space) and, on the real files, of
//     `guts-node import` of git repositories (in process, same code);
//   - store size as written, and after `compact` (all data in the bottommost level);
//   - read cost on each compacted store: point lookups of random ids (cold
//     block cache) and a full scan of the objects (store-tool read), and
//     verify --full: 1 and N threads, peak RSS, against git fsck --full of
//     every exported repository (objects/s).
// The notes print the issue's figures: size ratio (as written, compacted),
// write-throughput ratio (client, settled), get and scan time ratios.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { GutsStore } from '../src/store';
import { BenchResult, cli, CLI, loadAverage, machineInfo, q, round, Sample, stat, SubjectResult, timeShell } from './lib';
import { BenchEnv } from './suites';

const TOOL = path.resolve(__dirname, 'store-tool.js');
type Format = 'snappy' | 'default';
const FORMATS: Format[] = ['snappy', 'default'];

function tool(args: string[], outFile: string, options?: string): { sample: Sample; out: Record<string, number> } {
  const extra = options ? ['--options', options] : [];
  const sample = timeShell(`${[process.execPath, TOOL, ...args, ...extra].map(q).join(' ')} > ${q(outFile)}`);
  return { sample, out: JSON.parse(fs.readFileSync(outFile, 'utf8')) as Record<string, number> };
}

/** `GUTS_BENCH_STORE_OPTIONS`: a RocksDB option string applied to the default format (tuning runs). */
export async function storeBench(env: BenchEnv): Promise<BenchResult> {
  const before = loadAverage();
  const options = process.env.GUTS_BENCH_STORE_OPTIONS || undefined;
  const dir = (f: Format, what: string) => path.join(env.work, `store-${what}-${f}`);
  const out = path.join(env.work, 'store-tool.json');
  const copy: Record<Format, Array<{ sample: Sample; out: Record<string, number> }>> = { snappy: [], default: [] };
  const imp: Record<Format, Array<{ sample: Sample; out: Record<string, number> }>> = { snappy: [], default: [] };
  // import: the real files' git repositories, the smaller ones up to ~400 MB of repository dirs
  const repos = (env.repos ?? []).map((r) => ({ r, bytes: dirSize(r) })).sort((a, b) => a.bytes - b.bytes);
  const importRepos: string[] = [];
  let importBytes = 0;
  for (const x of repos) {
    if (importBytes + x.bytes > 400e6) break;
    importRepos.push(x.r);
    importBytes += x.bytes;
  }
  for (let i = 0; i < env.runs; i++) {
    for (let k = 0; k < FORMATS.length; k++) {
      const f = FORMATS[(k + i) % FORMATS.length]; // alternate the order
      copy[f].push(tool(['copy', env.dataDir, dir(f, 'copy'), f], out, f === 'default' ? options : undefined));
      if (importRepos.length) {
        imp[f].push(tool(['import', dir(f, 'import'), f, ...importRepos], out, f === 'default' ? options : undefined));
        fs.rmSync(dir(f, 'import'), { recursive: true, force: true });
      }
    }
  }
  // sizes: as written (last copy), then compacted in the same format
  const written: Record<Format, number> = { snappy: copy.snappy.at(-1)!.out.sst_bytes, default: copy.default.at(-1)!.out.sst_bytes };
  const compacted: Record<Format, number> = { snappy: 0, default: 0 };
  const compactS: Record<Format, number> = { snappy: 0, default: 0 };
  for (const f of FORMATS) {
    const r = tool(['compact', dir(f, 'copy'), f], out, f === 'default' ? options : undefined);
    compacted[f] = (r.out as unknown as { after: { bytes: number } }).after.bytes;
    compactS[f] = r.sample.wall_s;
  }
  // read cost on both compacted stores, alternating: random gets, full scan
  const reads: Record<Format, Array<Record<string, number>>> = { snappy: [], default: [] };
  for (let i = 0; i < env.runs; i++) {
    for (const f of i % 2 ? [...FORMATS].reverse() : FORMATS) reads[f].push(tool(['read', dir(f, 'copy'), '20000'], out).out);
  }
  const readMed = (f: Format, k: string) => stat(reads[f].map((r) => r[k])).median;
  // verify --full on both compacted stores, 1 and N threads, alternating
  const threads = [1, env.threads];
  const verify = new Map<string, Sample[]>();
  for (let i = 0; i < env.runs; i++) {
    for (const f of i % 2 ? [...FORMATS].reverse() : FORMATS) {
      for (const t of i % 2 ? [...threads].reverse() : threads) {
        const key = `${f}/${t}`;
        if (!verify.has(key)) verify.set(key, []);
        verify.get(key)!.push(timeShell(cli('verify', '--data-dir', dir(f, 'copy'), '--full', '--threads', String(t))));
      }
    }
  }
  const counts = JSON.parse(execFileSync(CLI[0], [CLI[1], 'verify', '--data-dir', dir('default', 'copy'), '--full', '--json']).toString()) as { objects: number };
  // git fsck --full of one repository of the data set, exported (objects/s; the copies hold no repositories)
  const fsck = await fsckRate(env, env.dataDir);

  const objBytes = copy.default[0].out.bytes;
  const subjects: SubjectResult[] = [];
  const med = (xs: number[]) => stat(xs).median;
  for (const f of FORMATS) {
    const putS = copy[f].map((c) => c.out.put_seconds);
    subjects.push({
      label: `batch API writes, ${f}`,
      command: `store-tool copy SRC DST ${f}`,
      wall_s: stat(copy[f].map((c) => c.sample.wall_s)),
      cpu_s: stat(copy[f].map((c) => c.sample.cpu_s)),
      peak_rss_mb: stat(copy[f].map((c) => c.sample.peak_rss_mb)),
      extra: {
        MB_per_s: round(objBytes / med(putS) / 1e6, 1),
        settled_MB_per_s: round(objBytes / med(copy[f].map((c) => c.out.settled_seconds)) / 1e6, 1),
        sst_MB: round(written[f] / 1e6, 1),
        compacted_MB: round(compacted[f] / 1e6, 1),
        gets_per_s: round(reads[f][0].gets / readMed(f, 'get_seconds'), 0),
        scan_MB_per_s: round(objBytes / readMed(f, 'scan_seconds') / 1e6, 1),
      },
    });
  }
  if (importRepos.length) {
    for (const f of FORMATS) {
      subjects.push({
        label: `import ${importRepos.length} git repos, ${f}`,
        command: `store-tool import DST ${f} ${importRepos.map((r) => path.basename(r)).join(' ')}`,
        wall_s: stat(imp[f].map((c) => c.sample.wall_s)),
        cpu_s: stat(imp[f].map((c) => c.sample.cpu_s)),
        peak_rss_mb: stat(imp[f].map((c) => c.sample.peak_rss_mb)),
        extra: { MB_per_s: round(imp[f][0].out.bytes / med(imp[f].map((c) => c.out.seconds)) / 1e6, 1), sst_MB: round(imp[f].at(-1)!.out.sst_bytes / 1e6, 1) },
      });
    }
  }
  for (const f of FORMATS) {
    for (const t of threads) {
      const s = verify.get(`${f}/${t}`)!;
      const w = stat(s.map((x) => x.wall_s));
      subjects.push({
        label: `verify --full, ${f}, ${t} thread${t > 1 ? 's' : ''}`,
        command: cli('verify', '--data-dir', dir(f, 'copy'), '--full', '--threads', String(t)),
        wall_s: w,
        cpu_s: stat(s.map((x) => x.cpu_s)),
        peak_rss_mb: stat(s.map((x) => x.peak_rss_mb)),
        extra: { objects_per_s: round(counts.objects / w.median, 0), ...(fsck ? { vs_git_fsck: round(counts.objects / w.median / fsck.objects_per_s, 1) } : {}) },
      });
    }
  }
  const subj = (label: string) => subjects.find((s) => s.label.startsWith(label))!;
  const ratio = (a: number, b: number) => round(a / b, 3);
  const v = (f: Format, t: number) => subj(`verify --full, ${f}, ${t} thread`).wall_s!.median;
  const notes = [
    `store size, default / snappy: as written ${ratio(written.default, written.snappy)}× (${round(written.default / 1e6, 1)} / ${round(written.snappy / 1e6, 1)} MB), ` +
      `compacted ${ratio(compacted.default, compacted.snappy)}× (${round(compacted.default / 1e6, 1)} / ${round(compacted.snappy / 1e6, 1)} MB) (target ≤ 0.7×); ` +
      `object bytes ${round(objBytes / 1e6, 1)} MB; compact took ${round(compactS.snappy, 1)} s (snappy) / ${round(compactS.default, 1)} s (default)`,
    `batch API write throughput, default / snappy: as the client sees it ${ratio(Number(subj('batch API writes, default').extra!.MB_per_s), Number(subj('batch API writes, snappy').extra!.MB_per_s))}×, ` +
      `with the compactions it caused ${ratio(Number(subj('batch API writes, default').extra!.settled_MB_per_s), Number(subj('batch API writes, snappy').extra!.settled_MB_per_s))}× (target ≥ 0.9×)`,
    `read cost, default / snappy (time, compacted stores, median): get ${ratio(readMed('default', 'get_seconds'), readMed('snappy', 'get_seconds'))}× ` +
      `(${reads.default[0].gets} random point lookups, cold cache), full scan ${ratio(readMed('default', 'scan_seconds'), readMed('snappy', 'scan_seconds'))}×, ` +
      `verify --full ${env.threads} threads ${ratio(v('default', env.threads), v('snappy', env.threads))}×`,
    ...(importRepos.length
      ? [`import throughput, default / snappy: ${ratio(Number(subj('import ' + importRepos.length + ' git repos, default').extra!.MB_per_s), Number(subj('import ' + importRepos.length + ' git repos, snappy').extra!.MB_per_s))}× (target ≥ 0.9×)`]
      : []),
    `verify --full scaling 1 → ${env.threads} threads: default ${ratio(v('default', 1), v('default', env.threads))}×, snappy ${ratio(v('snappy', 1), v('snappy', env.threads))}× (target ≥ 1.8×)`,
    `verify --full peak RSS: default ${stat(verify.get(`default/${env.threads}`)!.map((x) => x.peak_rss_mb)).max} MB (target ≤ 150 MB)`,
    fsck
      ? `git fsck --full on ${fsck.repo} (${fsck.objects} objects): ${fsck.objects_per_s} objects/s; verify --full ${env.threads} threads: ` +
        `default ${subj(`verify --full, default, ${env.threads}`).extra!.vs_git_fsck}×, snappy ${subj(`verify --full, snappy, ${env.threads}`).extra!.vs_git_fsck}× (target ≥ 10×)`
      : 'git fsck comparison skipped (export failed)',
    ...(options ? [`default format with GUTS_BENCH_STORE_OPTIONS=${options}`] : []),
  ];
  for (const f of FORMATS) fs.rmSync(dir(f, 'copy'), { recursive: true, force: true });
  return {
    name: 'store',
    baseline: 'snappy (the format before issue 14)',
    ratio_desc: 'median wall / the last subject',
    runs: env.runs,
    data: { object_bytes: objBytes, objects: counts.objects, written, compacted, import_repos: importRepos.map((r) => path.basename(r)) },
    dataset: env.dataset,
    machine: machineInfo(),
    load: { before, after: loadAverage() },
    columns: [
      ['MB/s', 'MB_per_s'],
      ['settled MB/s', 'settled_MB_per_s'],
      ['SST MB', 'sst_MB'],
      ['compacted MB', 'compacted_MB'],
      ['gets/s', 'gets_per_s'],
      ['scan MB/s', 'scan_MB_per_s'],
      ['objects/s', 'objects_per_s'],
      ['× git fsck', 'vs_git_fsck'],
    ],
    subjects,
    notes,
    date: new Date().toISOString(),
  };
}

function dirSize(p: string): number {
  let n = 0;
  for (const e of fs.readdirSync(p, { withFileTypes: true })) {
    const f = path.join(p, e.name);
    if (e.isDirectory()) n += dirSize(f);
    else if (e.isFile()) n += fs.statSync(f).size;
  }
  return n;
}

/**
 * git fsck --full of every repository of the data set, each exported from the
 * store as a bare repository (one pack, as a git host keeps them after gc):
 * the same objects verify --full checks (shared ones counted once per repository).
 */
async function fsckRate(env: BenchEnv, dataDir: string): Promise<{ repo: string; objects: number; objects_per_s: number } | null> {
  const store = await GutsStore.open(dataDir, { readOnly: true });
  const repos = (await store.listRepos()).map((r) => r.name);
  await store.close();
  if (!repos.length) return null;
  let objects = 0;
  let wall = 0;
  for (const [i, repo] of repos.entries()) {
    const exportDir = path.join(env.work, `store-export-${i}.git`);
    fs.rmSync(exportDir, { recursive: true, force: true });
    try {
      execFileSync(CLI[0], [CLI[1], 'export', '--data-dir', dataDir, '--repo', repo, exportDir], { stdio: 'ignore' });
    } catch {
      return null;
    }
    objects += Number(execFileSync('git', ['-C', exportDir, 'count-objects', '-v']).toString().match(/in-pack: (\d+)/)?.[1] ?? 0);
    wall += timeShell(`git -C ${q(exportDir)} fsck --full --no-progress`).wall_s;
    fs.rmSync(exportDir, { recursive: true, force: true });
  }
  return { repo: `${repos.length} repositories`, objects, objects_per_s: round(objects / wall, 0) };
}
