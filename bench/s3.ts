// Off-site backups, streamed vs the guide's two steps, against a loopback
// S3-compatible server (s3rver, its own process):
//   create:  backup create --output s3://… (archive streamed into a multipart upload)
//      vs    backup create --output FILE, then a multipart upload of FILE
//   restore: backup restore s3://… (parallel ranged GETs streamed into the reader)
//      vs    download FILE, then backup restore FILE
// Each step of the two-step paths is also timed alone in the same run
// (c = create to disk, u = upload of the file, d = download, r = restore
// from the file): a streamed path overlaps its two steps, so it cannot beat
// max(c, u); s3rver's CompleteMultipartUpload (k, measured in the u runs:
// it re-reads and rewrites every part) comes after the last byte either way,
// so the create floor is (max(c, u - k) + k) / (c + u); restore's is
// max(d, r) / (d + r). Printed beside the measured ratios.
// Targets (issue 13): streamed ≤ 0.6× the two steps' wall time; create's peak RSS ≤ 200 MB.
//   node dist/bench/s3.js [--size 384MiB | --real [MB]] [--runs 3]
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';

import { realCorpus } from './corpus';
import { BenchResult, cli, compare, printTable, q, ROOT, round, saveResult, stat, timeShell } from './lib';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(name);
  return i > 0 && process.argv[i + 1] && !process.argv[i + 1].startsWith('--') ? process.argv[i + 1] : def;
}

/**
 * Adds the floor to a suite: `streamed` vs the two steps (the baseline) and
 * the two steps alone, a and b. Full overlap cannot beat max(a, b); a part of
 * b that no streaming can overlap (`serial`: s3rver's CompleteMultipartUpload,
 * which re-reads, hashes and rewrites every part, after the last byte) adds to
 * it: floor = (max(a, b - serial) + serial) / (a + b), the best ratio against
 * this server on this machine. `streamed_vs_floor` = streamed / (that floor's
 * seconds) says how close the streamed path gets (1.00 = full overlap).
 */
function addFloor(r: BenchResult, streamed: string, stepA: string, stepB: string, what: string, serial = 0): void {
  const med = (label: string) => r.subjects.find((s) => s.label === label)!.wall_s!.median;
  const a = med(stepA);
  const b = med(stepB);
  const s = med(streamed);
  const best = Math.max(a, b - serial) + serial;
  const floor = round(best / (a + b));
  const ofFloor = round(s / best);
  (r as BenchResult & { floor?: Record<string, number> }).floor = {
    step_a_s: a,
    step_b_s: b,
    serial_s: round(serial),
    simple_floor_ratio: round(Math.max(a, b) / (a + b)),
    floor_ratio: floor,
    streamed_s: s,
    streamed_vs_floor: ofFloor,
  };
  r.notes.push(
    `floor: ${what} alone ${a.toFixed(2)} s / ${b.toFixed(2)} s` +
      (serial ? ` (of which ${serial.toFixed(2)} s CompleteMultipartUpload, serial after the last byte)` : '') +
      ` -> best possible ratio ${serial ? '(max(a, b - serial) + serial)' : 'max(a, b)'} / (a + b) = ${floor.toFixed(2)}× ` +
      `(max/sum alone: ${round(Math.max(a, b) / (a + b)).toFixed(2)}×); streamed = ${ofFloor.toFixed(2)}× that best time (1.00 = full overlap)`,
  );
}

async function main(): Promise<void> {
  const real = process.argv.includes('--real');
  const size = arg('--size', '384MiB');
  const realMb = Number(arg('--real', '300'));
  const runs = Number(arg('--runs', '3'));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'guts-bench-s3-'));
  let dataDir = path.join(dir, 'data');
  const env = {
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    AWS_REGION: 'us-east-1',
    GUTS_CONFIG: '/dev/null',
    AWS_CONFIG_FILE: '/nonexistent',
    AWS_SHARED_CREDENTIALS_FILE: '/nonexistent',
  };
  const server = spawn(process.execPath, [path.join(ROOT, 'test/lib/s3rver-main.js'), path.join(dir, 's3'), 'bench'], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      readline.createInterface({ input: server.stdout! }).on('line', (l) => {
        const m = /^listening (\d+)$/.exec(l);
        if (m) resolve(Number(m[1]));
      });
      server.on('exit', (c) => reject(new Error(`s3rver exited ${c}`)));
    });
    Object.assign(process.env, env, { AWS_ENDPOINT_URL: `http://127.0.0.1:${port}` });
    if (real) dataDir = realCorpus(dir, realMb * 1e6, (l) => process.stdout.write(l + '\n')).dataDir;
    else timeShell(`${cli('--data-dir', dataDir, 'dev', 'seed', '--size', size)} >/dev/null 2>&1`);
    const tool = (...a: string[]) => [process.execPath, path.join(ROOT, 'dist/bench/s3-tool.js'), ...a].map(q).join(' ');
    const local = path.join(dir, 'local.tar.zst');
    const dl = path.join(dir, 'download.tar.zst');
    const dl2 = path.join(dir, 'download-steps.tar.zst');
    const t1 = path.join(dir, 'restore-stream');
    const t2 = path.join(dir, 'restore-local');
    const createLocal = `${cli('--data-dir', dataDir, 'backup', 'create', '--output', local, '--force')} 2>/dev/null`;
    // the upload-alone row needs a finished file from the first round on
    timeShell(createLocal);
    const archiveBytes = fs.statSync(local).size;
    const data = {
      data_set: real ? `real-files corpus ${realMb} MB` : `seeded ${size}`,
      archive_bytes: archiveBytes,
      data_dir: dataDir,
      endpoint: `http://127.0.0.1:${port}`,
      // the transfer steps use the same part size and parallelism as the streamed path
      upload_parts: `s3-tool up --bound-of ${dataDir}`,
    };
    process.stdout.write(`# ${data.data_set}: archive ${(archiveBytes / 1e6).toFixed(1)} MB\n`);

    const suffix = real ? '-real' : '';
    const statsFile = path.join(dir, 'upload-stats.json');
    process.env.S3_TOOL_STATS = statsFile;
    const completes: number[] = [];
    const create = compare(
      `s3-create${suffix}`,
      [
        { label: 'backup create --output s3://', command: `${cli('--data-dir', dataDir, 'backup', 'create', '--output', 's3://bench/stream.tar.zst', '--force')} 2>/dev/null` },
        { label: 'step: create to disk (c)', command: createLocal },
        {
          label: 'step: multipart upload of FILE (u)',
          command: tool('up', local, 's3://bench/upload-only.tar.zst', dataDir),
          measure: () => {
            const st = JSON.parse(fs.readFileSync(statsFile, 'utf8')) as { completeSeconds: number };
            completes.push(st.completeSeconds);
            return { complete_s: round(st.completeSeconds, 2) };
          },
        },
        {
          label: 'create to disk + multipart upload',
          command: `${createLocal} && ${tool('up', local, 's3://bench/two-step.tar.zst', dataDir)}`,
        },
      ],
      runs,
      data,
      ['peak RSS of the two-step row is the larger of its two processes (GNU time reports the largest child)'],
    );
    addFloor(create, 'backup create --output s3://', 'step: create to disk (c)', 'step: multipart upload of FILE (u)', 'create / upload', stat(completes).median);
    printTable(create);
    saveResult(create);

    // the restore-alone row reads a downloaded copy made once
    timeShell(tool('down', 's3://bench/stream.tar.zst', dl2));
    const restore = compare(
      `s3-restore${suffix}`,
      [
        {
          label: 'backup restore s3://',
          prepare: () => fs.rmSync(t1, { recursive: true, force: true }),
          command: `${cli('backup', 'restore', 's3://bench/stream.tar.zst', '--target', t1)} 2>/dev/null`,
        },
        {
          label: 'step: download (d)',
          prepare: () => fs.rmSync(dl, { force: true }),
          command: tool('down', 's3://bench/stream.tar.zst', dl),
        },
        {
          label: 'step: restore FILE (r)',
          prepare: () => fs.rmSync(t2, { recursive: true, force: true }),
          command: `${cli('backup', 'restore', dl2, '--target', t2)} 2>/dev/null`,
        },
        {
          label: 'download + backup restore FILE',
          prepare: () => {
            fs.rmSync(t2, { recursive: true, force: true });
            fs.rmSync(dl, { force: true });
          },
          command: `${tool('down', 's3://bench/stream.tar.zst', dl)} && ${cli('backup', 'restore', dl, '--target', t2)} 2>/dev/null`,
        },
      ],
      runs,
      data,
    );
    addFloor(restore, 'backup restore s3://', 'step: download (d)', 'step: restore FILE (r)', 'download / restore');
    printTable(restore);
    saveResult(restore);
  } finally {
    server.kill('SIGTERM');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(String((e as Error).stack) + '\n');
  process.exit(1);
});
