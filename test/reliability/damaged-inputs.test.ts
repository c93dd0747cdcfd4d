// Hundreds of damaged archives (truncations, byte flips, zeroed ranges, cuts
// at and around frame / member / header boundaries, a frame spliced out) in
// all three formats, through `backup verify` and `backup restore` (also onto
// a nearly full file system). No run may end by a signal: a crash is never an
// exit code a user sees. Every run ends with a documented exit code (1: the
// damage was found, 2: an I/O error such as no space), and a failed restore
// leaves its target exactly as it was, with no staging dir behind.
//
// The runs go through the library API (verifyBackup / restoreBackup, what
// the CLI calls) in two child processes, so one process start serves many
// runs and a crash is counted, attributed to its input, and the rest go on in
// a fresh child. One child runs with the hasher slowed down (the test hook
// GUTS_TEST_SHA256_DELAY_MS): the reader, the decoders and the consumer then
// always run ahead of it, which made the freed-buffer crashes of issue 11
// deterministic rather than one in 20-40 runs.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { createBackup } from '../../src/backup';
import { cli, ROOT } from '../fixtures/cli';
import { archiveRegions, FORMATS, Format, prng, runSeed, seedStore, treeState } from './helpers';

const SEED = runSeed(1111);
const FRAME = 256 << 10; // several zstd frames / gzip members in a 4 MiB store

/** Applied by the driver to the intact archive, so that only one damaged copy per child is on disk at a time. */
interface Damage {
  kind: 'none' | 'cut' | 'flip' | 'zero' | 'splice' | 'repeat';
  a: number;
  b: number;
}
interface Job {
  /** the intact archive, the damage, and where the damaged copy (and its sidecar) is written */
  src: string;
  damage: Damage;
  file: string;
  sha256: string;
  mode: 'verify' | 'restore';
  target?: string;
  force?: boolean;
  /** what was done to the archive (messages) */
  what: string;
  diskFull?: boolean;
}
interface Outcome {
  i: number;
  exit: number;
  code: string | null;
  untouched: boolean | null;
  staging: string[];
}

// Runs jobs[from..] in order, one line of JSON per job on stdout.
const DRIVER = `
const fs = require('fs'), path = require('path'), crypto = require('crypto');
const D = ${JSON.stringify(path.join(ROOT, 'dist', 'src'))};
const { verifyBackup } = require(D + '/backup-verify.js');
const { restoreBackup } = require(D + '/restore.js');
const { exitCodeFor, errorCode } = require(D + '/errors.js');
const jobs = JSON.parse(fs.readFileSync(process.argv[1], 'utf8'));
function state(dir) {
  if (!fs.existsSync(dir)) return 'absent';
  const out = [];
  const walk = (rel) => {
    for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const r = path.join(rel, e.name), p = path.join(dir, r), st = fs.lstatSync(p);
      if (st.isDirectory()) { out.push(r + '/ ' + (st.mode & 0o7777)); walk(r); }
      else out.push(r + ' ' + (st.mode & 0o7777) + ' ' + crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex'));
    }
  };
  walk('');
  return out.join('\\n');
}
function apply(b, d) {
  switch (d.kind) {
    case 'cut': return b.subarray(0, d.a);
    case 'flip': { const c = Buffer.from(b); c[d.a] ^= d.b; return c; }
    case 'zero': { const c = Buffer.from(b); c.fill(0, d.a, d.b); return c; }
    case 'splice': return Buffer.concat([b.subarray(0, d.a), b.subarray(d.b)]);
    case 'repeat': return Buffer.concat([b.subarray(0, d.b), b.subarray(d.a)]);
    default: return b;
  }
}
(async () => {
  for (let i = Number(process.argv[2]); i < jobs.length; i++) {
    const j = jobs[i];
    fs.writeFileSync(j.file, apply(fs.readFileSync(j.src), j.damage));
    fs.writeFileSync(j.file + '.sha256', j.sha256 + '  ' + path.basename(j.file) + '\\n');
    fs.writeSync(1, 'start ' + i + '\\n');
    const before = j.target ? state(j.target) : null;
    let exit, code = null;
    try {
      if (j.mode === 'verify') exit = (await verifyBackup({ file: j.file, threads: 2 })).status === 'VALID' ? 0 : 1;
      else { await restoreBackup({ file: j.file, target: j.target, force: j.force, threads: 2 }); exit = 0; }
    } catch (e) {
      exit = exitCodeFor(e);
      code = errorCode(e);
    }
    const untouched = j.target ? state(j.target) === before : null;
    const staging = j.target ? fs.readdirSync(path.dirname(j.target)).filter((n) => /\\.restore-\\d+\\.staging$|^\\.guts-restore-/.test(n)) : [];
    fs.writeSync(1, JSON.stringify({ i, exit, code, untouched, staging }) + '\\n');
  }
})();
`;

interface Crash {
  i: number;
  how: string;
}

/** Runs every job; a child that dies is replaced and the job it was on counted as a crash. */
async function runAll(jobs: Job[], jobsFile: string, env: NodeJS.ProcessEnv, wrap?: (argv: string[]) => string[]): Promise<{ outcomes: Outcome[]; crashes: Crash[] }> {
  const outcomes: Outcome[] = [];
  const crashes: Crash[] = [];
  let from = 0;
  while (from < jobs.length) {
    const argv = [process.execPath, '-e', DRIVER, jobsFile, String(from)];
    const [cmd, ...args] = wrap ? wrap(argv) : argv;
    const base = cmd === 'unshare' ? shellEnv() : process.env;
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...base, GUTS_CONFIG: '/dev/null', ...env } });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const { status, signal } = await new Promise<{ status: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on('close', (status, signal) => resolve({ status, signal })),
    );
    let started = -1;
    for (const line of out.split('\n')) {
      if (line.startsWith('start ')) started = Number(line.slice(6));
      else if (line.startsWith('{')) {
        outcomes.push(JSON.parse(line) as Outcome);
        started = -1;
      }
    }
    if (started < 0) {
      if (status !== 0 || signal) crashes.push({ i: from, how: `driver exited ${status ?? signal} between runs: ${err.trim().slice(-500)}` });
      break;
    }
    crashes.push({ i: started, how: signal ? `signal ${signal}` : `exit ${status}: ${err.trim().slice(-500)}` });
    from = started + 1;
  }
  return { outcomes, crashes };
}

/** Damages of `file`: what was done -> how. */
function damage(file: string, format: Format, rnd: ReturnType<typeof prng>): Array<[string, Damage]> {
  const bytes = fs.readFileSync(file);
  const n = bytes.length;
  const out: Array<[string, Damage]> = [];
  const regions = archiveRegions(file);
  const boundaryWhat = format === 'tar.zst' ? 'zstd magic' : format === 'tar.gz' ? 'gzip magic and method' : 'tar header';
  const boundaries = regions.filter((r) => r.what === boundaryWhat && r.start > 0).map((r) => r.start);
  // cuts at, just before and just after frame / member / header boundaries
  const picked = new Set<number>();
  while (picked.size < Math.min(6, boundaries.length)) picked.add(rnd.pick(boundaries));
  for (const b of picked) for (const d of [-1, 0, 1]) out.push([`cut at ${b + d} (boundary ${b})`, { kind: 'cut', a: b + d, b: 0 }]);
  for (let k = 0; k < 14; k++) {
    const len = 1 + rnd.int(n - 1);
    out.push([`cut at ${len}`, { kind: 'cut', a: len, b: 0 }]);
  }
  for (let k = 0; k < 22; k++) {
    const off = rnd.int(n);
    out.push([`bit flip at ${off}`, { kind: 'flip', a: off, b: 1 << rnd.int(8) }]);
  }
  for (let k = 0; k < 16; ) {
    const off = rnd.int(n);
    const len = Math.min(n - off, 1 + rnd.int(rnd.int(2) ? 64 : 8192));
    if (bytes.subarray(off, off + len).every((x) => x === 0)) continue; // zeroing zeros changes nothing
    out.push([`${len} bytes zeroed at ${off}`, { kind: 'zero', a: off, b: off + len }]);
    k++;
  }
  // a whole frame / member / tar entry header spliced out, and a stretch
  // repeated (what a broken copy tool or a resumed download leaves)
  if (boundaries.length >= 2) {
    for (let k = 0; k < 3; k++) {
      const i = rnd.int(boundaries.length - 1);
      const [a, z] = [boundaries[i], boundaries[i + 1]];
      out.push([`bytes ${a}..${z} spliced out`, { kind: 'splice', a, b: z }]);
      out.push([`bytes ${a}..${z} repeated`, { kind: 'repeat', a, b: z }]);
    }
  }
  return out;
}

// Under fuzz/sanitize.sh tsan, LD_PRELOAD carries the sanitizer runtime,
// which makes sh crash at start: the shell runs without it and hands it to node.
const PRELOAD = process.env.LD_PRELOAD;
const shellEnv = (): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = { ...process.env, GUTS_NODE_PRELOAD: PRELOAD ?? '' };
  delete env.LD_PRELOAD;
  return env;
};

/** A private mount namespace with a `size` tmpfs on mnt, or null when this machine cannot (not root). */
function tmpfsWrap(mnt: string, size: string): ((argv: string[]) => string[]) | null {
  const probe = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', `mount -t tmpfs -o size=64k tmpfs ${mnt}`], { encoding: 'utf8', env: shellEnv() });
  if (probe.status !== 0) return null;
  const run = PRELOAD ? 'exec env LD_PRELOAD="$GUTS_NODE_PRELOAD" "$0" "$@"' : 'exec "$0" "$@"';
  return (argv) => ['unshare', '-m', '--propagation', 'private', 'sh', '-c', `mount -t tmpfs -o size=${size} tmpfs ${mnt} && ${run}`, ...argv];
}

t.test('damaged archives: no crash, documented exit codes, targets untouched', async (t) => {
  const dir = t.testdir({ scratch0: {}, scratch1: {}, scratch2: {}, full: {} });
  const dataDir = path.join(dir, 'data');
  seedStore(dataDir, '4MiB');
  const rnd = prng(SEED);
  // two children at once (even and odd inputs; the odd ones with a slow
  // hasher), each restoring over its own copy of a real data dir (--force):
  // a failed restore must leave it as it was
  const halves: Job[][] = [[], []];
  const targets: string[] = [];
  for (const format of FORMATS) {
    const file = path.join(dir, `ref.${format}`);
    await createBackup({ dataDir, output: file, frameSize: FRAME, threads: 2 });
    const sidecar = fs.readFileSync(`${file}.sha256`, 'utf8').split(/\s+/)[0];
    const target = [0, 1].map((c) => path.join(dir, `child${c}`, `target-${format.replace('.', '-')}`));
    const ok = cli(['backup', 'restore', file, '--target', target[0]]);
    t.equal(ok.status, 0, ok.status ? ok.stderr : `reference restore of ${format}`);
    fs.cpSync(target[0], target[1], { recursive: true, preserveTimestamps: true });
    targets.push(...target);
    damage(file, format, rnd).forEach(([what, d], k) => {
      const c = k % 2;
      const base = { src: file, damage: d, file: path.join(dir, `scratch${c}`, `damaged.${format}`), sha256: sidecar, what: `${format}: ${what}` };
      halves[c].push({ ...base, mode: 'verify' });
      if (k % 4 < 2) halves[c].push({ ...base, mode: 'restore', target: target[c], force: true });
    });
  }
  const jobs = [...halves[0], ...halves[1]];
  // onto a nearly full file system: the intact archives and a few damaged ones
  const mnt = path.join(dir, 'full');
  const wrap = tmpfsWrap(mnt, '2m');
  const fullJobs: Job[] = [];
  for (const format of FORMATS) {
    const candidates = halves[0].filter((j) => j.mode === 'verify' && j.src.endsWith(format));
    for (let k = 0; k < 8; k++) {
      // the intact archive first: it alone must fail with GUTS_NO_SPACE
      const base = k === 0 ? { ...candidates[0], damage: { kind: 'none', a: 0, b: 0 } as Damage, what: `${format}: intact` } : rnd.pick(candidates);
      fullJobs.push({ ...base, file: path.join(dir, 'scratch2', `damaged.${format}`), mode: 'restore', target: path.join(mnt, `data-${format.replace('.', '-')}-${k}`), what: `${base.what}, onto a full fs`, diskFull: true });
    }
  }
  const jobsFile = path.join(dir, 'jobs.json');
  const fullFile = path.join(dir, 'full-jobs.json');
  halves.forEach((h, k) => fs.writeFileSync(`${jobsFile}.${k}`, JSON.stringify(h)));
  fs.writeFileSync(fullFile, JSON.stringify(fullJobs));
  const started = Date.now();
  const [even, odd] = await Promise.all([
    runAll(halves[0], `${jobsFile}.0`, {}),
    runAll(halves[1], `${jobsFile}.1`, { GUTS_TEST_HOOKS: '1', GUTS_TEST_SHA256_DELAY_MS: '2' }),
  ]);
  // disk full: a 2 MiB tmpfs in a private mount namespace (root), else RLIMIT_FSIZE
  const full = await runAll(fullJobs, fullFile, { GUTS_TEST_HOOKS: '1', GUTS_TEST_SHA256_DELAY_MS: '1' }, wrap ?? ((argv) => ['prlimit', '--fsize=1000000', ...argv]));

  const results: Array<[Job, Outcome]> = [];
  const crashes: Array<[Job, string]> = [];
  for (const [half, r] of [[halves[0], even], [halves[1], odd], [fullJobs, full]] as const) {
    for (const o of r.outcomes) results.push([half[o.i], o]);
    for (const c of r.crashes) crashes.push([half[c.i], c.how]);
  }
  const runs = results.length + crashes.length;
  t.comment(`damaged-input runs: ${runs} (${jobs.filter((j) => j.mode === 'verify').length} verify, ${jobs.filter((j) => j.mode === 'restore').length} restore, ${fullJobs.length} restore onto a full file system${wrap ? '' : ' (RLIMIT_FSIZE)'}), crashes: ${crashes.length}, ${((Date.now() - started) / 1000).toFixed(1)} s`);
  for (const [job, how] of crashes) t.fail(`crash: ${job.mode} of ${job.what} (${job.src} damaged: ${JSON.stringify(job.damage)}): ${how}`);
  t.equal(runs, jobs.length + fullJobs.length, 'every input was run');

  let bad = 0;
  for (const [job, o] of results) {
    const where = `${job.mode} of ${job.what}`;
    const problems: string[] = [];
    if (job.diskFull) {
      // the intact archive needs more room than there is: GUTS_NO_SPACE; a damaged one may be refused first
      if (job.damage.kind === 'none' ? o.code !== 'GUTS_NO_SPACE' || o.exit !== 2 : ![1, 2].includes(o.exit))
        problems.push(`exit ${o.exit} ${o.code}`);
    } else if (job.mode === 'verify') {
      if (o.exit !== 1) problems.push(`exit ${o.exit} ${o.code ?? 'INVALID'} (expected 1: every damage is found, the sidecar covers every byte)`);
    } else if (![1, 2].includes(o.exit)) {
      problems.push(`exit ${o.exit} ${o.code}`);
    }
    if (job.mode === 'restore' && o.exit !== 0) {
      if (!o.untouched) problems.push('the target changed');
      if (o.staging.length) problems.push(`staging left: ${o.staging.join(', ')}`);
    }
    if (problems.length) {
      bad++;
      if (bad <= 20) t.fail(`${where}: ${problems.join('; ')}`);
    }
  }
  t.equal(bad, 0, 'every run ended with a documented exit code and left its target untouched');
  const codes: Record<string, number> = {};
  for (const [, o] of results) codes[`${o.exit} ${o.code ?? ''}`.trim()] = (codes[`${o.exit} ${o.code ?? ''}`.trim()] ?? 0) + 1;
  t.comment(`exit codes: ${JSON.stringify(codes)}`);
  for (const target of targets) t.ok(Object.keys(treeState(target)).length > 0, 'the restore target still holds its data');
});
