// Continuous WAL archiving: node p99 write latency with archiving on vs off
// (target ≤ 1.1×), and the measured RPO under steady write load: writes the
// node acknowledged that are not in the archive when it is killed -9 (the
// machine lost at that instant), at default settings (target ≤ 5 s) and with
// archive_timeout 1s (target ≤ 1.5 s). Standalone: node dist/bench/wal-bench.js [--quick]
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { parseDuration } from '../src/config';
import { decodeSegment, parseSegmentName } from '../src/wal/segment';
import { BenchResult, loadAverage, machineInfo, printTable, round, saveResult, stat } from './lib';
import { p99, post, startNode, writeLoad } from './node-bench';
import { seed } from './suites';

function walConfig(dir: string, lines: Record<string, string>): string {
  const file = path.join(dir, 'config.yaml');
  fs.writeFileSync(file, 'wal:\n' + Object.entries(lines).map(([k, v]) => `  ${k}: ${JSON.stringify(v)}\n`).join(''));
  return file;
}

async function stopNode(child: import('node:child_process').ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.on('exit', r));
  child.kill(signal);
  await exited;
}

/**
 * Two nodes on two copies of the same seeded store, one archiving (cp into a
 * local dir, default archive_timeout and segment size), one not; load phases
 * alternate between them after a warm-up, 100 batches/s of 16 objects as in
 * the write-latency benchmark.
 */
export async function walLatencyBench(work: string, size: string, seconds: number, rounds: number): Promise<BenchResult> {
  const before = loadAverage();
  const off = path.join(work, 'wal-off');
  const on = path.join(work, 'wal-on');
  const archive = path.join(work, 'wal-archive');
  seed(off, size);
  fs.cpSync(off, on, { recursive: true });
  fs.mkdirSync(archive, { recursive: true });
  const config = walConfig(work, { archive_command: `cp %p ${archive}/%f` });
  const a = await startNode(off, { GUTS_CONFIG: '/dev/null' });
  const b = await startNode(on, { GUTS_CONFIG: config });
  const phases = { off: { lat: [] as number[], perRound: [] as number[] }, on: { lat: [] as number[], perRound: [] as number[] } };
  try {
    await writeLoad(a.url, seconds, 100, 'warm-off');
    await writeLoad(b.url, seconds, 100, 'warm-on');
    for (let r = 0; r < rounds; r++) {
      for (const [name, node] of (r % 2 ? [['on', b], ['off', a]] : [['off', a], ['on', b]]) as Array<['on' | 'off', { url: string }]>) {
        const lat = await writeLoad(node.url, seconds, 100, `${name}-${r}`);
        phases[name].lat.push(...lat);
        phases[name].perRound.push(p99(lat));
      }
    }
  } finally {
    await stopNode(a.child);
    await stopNode(b.child);
  }
  const segments = fs.readdirSync(archive).filter((f) => f.endsWith('.gwal'));
  const base = p99(phases.off.lat);
  const subject = (name: 'on' | 'off', label: string, command: string) => ({
    label,
    command,
    ratio_vs_baseline: round(p99(phases[name].lat) / base, 2),
    extra: {
      p50_ms: round(stat(phases[name].lat).median, 2),
      p99_ms: round(p99(phases[name].lat), 2),
      p99_per_round_ms: phases[name].perRound.map((v) => round(v, 2)).join(' '),
      max_ms: round(Math.max(...phases[name].lat), 1),
      batches: phases[name].lat.length,
    },
  });
  const subjects = [subject('on', 'writes, WAL archiving on (cp, archive_timeout 5s)', 'wal.archive_command: cp %p ARCHIVE/%f'), subject('off', 'writes, WAL archiving off', '')];
  return {
    name: 'wal-write-latency',
    baseline: 'writes, WAL archiving off',
    ratio_desc: 'p99 / p99 with archiving off (samples pooled over rounds)',
    runs: rounds,
    data: { seconds_per_phase: seconds, rounds, rate: '100 batches/s of 16 objects', store: size, segments_archived: segments.length },
    machine: machineInfo(),
    load: { before, after: loadAverage() },
    columns: [
      ['p50 ms', 'p50_ms'],
      ['p99 ms', 'p99_ms'],
      ['p99/round', 'p99_per_round_ms'],
      ['max ms', 'max_ms'],
      ['batches', 'batches'],
    ],
    subjects,
    notes: [`p99 with archiving on / off: ${subjects[0].ratio_vs_baseline}× (target ≤ 1.1×); ${segments.length} segments archived during the on phases`],
    date: new Date().toISOString(),
  };
}

/** Writes acknowledged before the kill and missing from the archive: how many, and the age of the oldest one at the kill. */
async function rpoRun(work: string, base: string, timeout: string, loadSeconds: number, run: number) {
  const data = path.join(work, `rpo-${timeout}-${run}`);
  const archive = path.join(work, `rpo-archive-${timeout}-${run}`);
  fs.rmSync(data, { recursive: true, force: true });
  fs.rmSync(archive, { recursive: true, force: true });
  fs.cpSync(base, data, { recursive: true });
  fs.mkdirSync(archive);
  const config = walConfig(path.dirname(archive), { archive_command: `cp %p ${archive}/.%f.tmp && mv ${archive}/.%f.tmp ${archive}/%f`, archive_timeout: timeout });
  fs.renameSync(config, `${config}.${timeout}.${run}`);
  const node = await startNode(data, { GUTS_CONFIG: `${config}.${timeout}.${run}` });
  const acked = new Map<number, number>(); // write number -> ack time (ms)
  const rate = 50;
  const start = Date.now();
  // anywhere in a segment's life: uniformly over one archive_timeout (+1 s)
  const killAt = start + loadSeconds * 1000 + Math.random() * (parseDuration(timeout) + 1000);
  let n = 0;
  const inflight: Promise<void>[] = [];
  while (Date.now() < killAt) {
    const id = n++;
    const body = JSON.stringify({ objects: [{ type: 'blob', data: Buffer.from(`<rpo ${id}> ${'y'.repeat(500)}`).toString('base64') }] });
    inflight.push(post(`${node.url}/api/repos/bench/rpo/objects`, body).then(() => void acked.set(id, Date.now()), () => undefined));
    const wait = start + n * (1000 / rate) - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  const killed = Date.now();
  const ackedAtKill = new Map(acked); // writes acknowledged after this instant do not count
  node.child.kill('SIGKILL');
  await new Promise((r) => node.child.on('exit', r));
  await Promise.allSettled(inflight);
  await new Promise((r) => setTimeout(r, 300)); // a cp started before the kill finishes its mv
  const archived = new Set<number>();
  for (const name of fs.readdirSync(archive).filter((f) => parseSegmentName(f))) {
    const seg = await decodeSegment(fs.readFileSync(path.join(archive, name)), name);
    for (const r of seg.records) for (const m of r.data.toString('latin1').matchAll(/<rpo (\d+)>/g)) archived.add(Number(m[1]));
  }
  let oldestMissing = Infinity;
  let missing = 0;
  for (const [id, at] of ackedAtKill) {
    if (archived.has(id)) continue;
    missing++;
    oldestMissing = Math.min(oldestMissing, at);
  }
  fs.rmSync(data, { recursive: true, force: true });
  fs.rmSync(archive, { recursive: true, force: true });
  return { acked: ackedAtKill.size, missing, rpo_s: missing ? (killed - oldestMissing) / 1000 : 0 };
}

export async function walRpoBench(work: string, size: string, runs: number, loadSeconds: number): Promise<BenchResult> {
  const before = loadAverage();
  const base = path.join(work, 'rpo-base');
  seed(base, size);
  const subjects = [];
  for (const [timeout, target] of [
    ['5s', 5],
    ['1s', 1.5],
  ] as Array<[string, number]>) {
    const r = [];
    for (let i = 0; i < runs; i++) r.push(await rpoRun(work, base, timeout, loadSeconds, i));
    const rpos = r.map((x) => x.rpo_s);
    subjects.push({
      label: `archive_timeout ${timeout}${timeout === '5s' ? ' (default)' : ''}, kill -9 under 50 writes/s`,
      command: `wal.archive_timeout ${timeout}; cp-based archive_command`,
      max_s: Math.max(...rpos),
      ratio_vs_baseline: round(Math.max(...rpos) / target, 2),
      extra: { rpo_max_s: round(Math.max(...rpos), 2), rpo_median_s: round(stat(rpos).median, 2), rpo_runs_s: rpos.map((v) => round(v, 2)).join(' '), target_s: target, acked: r.reduce((a, x) => a + x.acked, 0), lost_at_kill: r.reduce((a, x) => a + x.missing, 0) },
    });
  }
  return {
    name: 'wal-rpo',
    baseline: 'the RPO target of each setting',
    ratio_desc: 'worst RPO / target (≤ 1 meets it)',
    runs,
    data: { load: '50 batches/s, one 0.5 KiB object each', kill_after_s: `${loadSeconds} + uniform(0, archive_timeout + 1 s)`, store: size },
    machine: machineInfo(),
    load: { before, after: loadAverage() },
    columns: [
      ['RPO max s', 'rpo_max_s'],
      ['median s', 'rpo_median_s'],
      ['runs s', 'rpo_runs_s'],
      ['target s', 'target_s'],
      ['acked', 'acked'],
      ['not archived', 'lost_at_kill'],
    ],
    subjects: subjects.map(({ max_s, ...s }) => s),
    notes: [
      'RPO = age at the kill of the oldest acknowledged write not in the archive (the writes a restore from the archive would miss if the machine died then); decoded from the archived segments',
      `default settings: worst ${subjects[0].extra.rpo_max_s} s (target ≤ 5 s); archive_timeout 1s: worst ${subjects[1].extra.rpo_max_s} s (target ≤ 1.5 s)`,
    ],
    date: new Date().toISOString(),
  };
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const work = fs.mkdtempSync(path.join(process.env.GUTS_BENCH_DIR || os.tmpdir(), 'guts-wal-bench-'));
  try {
    for (const r of [await walLatencyBench(work, quick ? '32MiB' : '128MiB', quick ? 6 : 10, quick ? 2 : 4), await walRpoBench(work, '16MiB', quick ? 2 : 4, 12)]) {
      printTable(r);
      process.stdout.write(`  -> ${saveResult(r)}\n`);
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

if (require.main === module) void main();
