// Off-site backups, streamed vs the guide's two steps, against a loopback
// S3-compatible server (s3rver, its own process):
//   create:  backup create --output s3://… (archive streamed into a multipart upload)
//      vs    backup create --output FILE, then a multipart upload of FILE
//   restore: backup restore s3://… (parallel ranged GETs streamed into the reader)
//      vs    download FILE, then backup restore FILE
// Targets: streamed ≤ 0.6× the two steps' wall time; create's peak RSS ≤ 200 MB.
//   node dist/bench/s3.js [--size 256MiB] [--runs 3]
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';

import { cli, compare, printTable, q, ROOT, saveResult, timeShell } from './lib';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : def;
}

async function main(): Promise<void> {
  const size = arg('--size', '256MiB');
  const runs = Number(arg('--runs', '3'));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'guts-bench-s3-'));
  const dataDir = path.join(dir, 'data');
  const env = {
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    AWS_REGION: 'us-east-1',
    GUTS_CONFIG: path.join(dir, 'none.yaml'),
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
    timeShell(`${cli('--data-dir', dataDir, 'dev', 'seed', '--size', size)} >/dev/null 2>&1`);
    const tool = (...a: string[]) => [process.execPath, path.join(ROOT, 'dist/bench/s3-tool.js'), ...a].map(q).join(' ');
    const local = path.join(dir, 'local.tar.zst');
    const dl = path.join(dir, 'download.tar.zst');
    const t1 = path.join(dir, 'restore-stream');
    const t2 = path.join(dir, 'restore-local');
    const data = { size, data_dir: dataDir, endpoint: `http://127.0.0.1:${port}` };

    const create = compare(
      's3-create',
      [
        { label: 'backup create --output s3://', command: `${cli('--data-dir', dataDir, 'backup', 'create', '--output', 's3://bench/stream.tar.zst', '--force')} 2>/dev/null` },
        {
          label: 'create to disk + multipart upload',
          prepare: () => fs.rmSync(local, { force: true }),
          command: `${cli('--data-dir', dataDir, 'backup', 'create', '--output', local, '--force')} 2>/dev/null && ${tool('up', local, 's3://bench/two-step.tar.zst')}`,
        },
      ],
      runs,
      data,
      ['peak RSS of the two-step row is the larger of its two processes (GNU time reports the largest child)'],
    );
    printTable(create);
    saveResult(create);

    const restore = compare(
      's3-restore',
      [
        {
          label: 'backup restore s3://',
          prepare: () => fs.rmSync(t1, { recursive: true, force: true }),
          command: `${cli('backup', 'restore', 's3://bench/stream.tar.zst', '--target', t1)} 2>/dev/null`,
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
