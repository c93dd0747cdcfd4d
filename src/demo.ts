// `guts-node demo`: the whole backup story on an embedded default data dir,
// run as the real commands an operator would type (each printed first):
// start a node, seed it through the node, hot backup, verify the archive,
// restore it elsewhere with --verify, full object check, stop the node.
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';

import { GutsError } from './errors';
import { CLI_BIN as BIN } from './paths';
import { refuseLiveStoreTarget, resolveStorePath } from './restore-guard';

export interface DemoOptions {
  dir: string;
  size: string;
  keep: boolean;
  log: (line: string) => void;
}

function show(log: (l: string) => void, args: string[]): void {
  log(`\n$ guts-node ${args.map((a) => (/[\s$"']/.test(a) ? JSON.stringify(a) : a)).join(' ')}`);
}

async function step(log: (l: string) => void, args: string[], okCodes = [0]): Promise<number> {
  show(log, args);
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
  const code: number = await new Promise((resolve) => child.on('exit', (c) => resolve(c ?? 2)));
  if (!okCodes.includes(code)) throw new GutsError('GUTS_INTERNAL', `demo step failed (exit ${code}): guts-node ${args.join(' ')}`);
  return code;
}

async function startNode(log: (l: string) => void, dataDir: string): Promise<{ child: ChildProcess; url: string }> {
  const args = ['serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0'];
  show(log, args);
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const rl = readline.createInterface({ input: child.stdout! });
  const url = await new Promise<string>((resolve, reject) => {
    rl.on('line', (line) => {
      log(line);
      const m = /listening (http:\/\/\S+)/.exec(line);
      if (m) resolve(m[1]);
    });
    child.on('exit', (c) => reject(new GutsError('GUTS_INTERNAL', `node exited early with code ${c}`)));
  });
  return { child, url };
}

/** What an earlier demo leaves in its dir (--keep, or an interrupted run). */
const DEMO_ENTRIES = new Set(['data', 'backups', 'restored']);

/**
 * The demo starts and ends with rm -rf of its dir: refuse one that holds a
 * live store (or lies inside one) and one that holds anything but an earlier
 * demo, before anything is removed.
 */
async function checkDemoDir(base: string): Promise<void> {
  await refuseLiveStoreTarget(base, 'run the demo in');
  let names: string[] = [];
  try {
    names = fs.readdirSync(base);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    if (code === 'ENOTDIR') throw new GutsError('GUTS_EXISTS', `demo dir ${base} exists and is not a directory`, base);
    throw e;
  }
  const foreign = names.filter((n) => !DEMO_ENTRIES.has(n));
  if (foreign.length) {
    throw new GutsError('GUTS_EXISTS', `demo dir ${base} holds ${foreign.slice(0, 3).map((n) => JSON.stringify(n)).join(', ')}, not an earlier demo; the demo removes its dir: pick a new or empty --dir`, base);
  }
}

export async function runDemo(opts: DemoOptions): Promise<void> {
  const base = resolveStorePath(opts.dir);
  await checkDemoDir(base);
  const dataDir = path.join(base, 'data');
  const backups = path.join(base, 'backups');
  const restored = path.join(base, 'restored');
  fs.rmSync(base, { recursive: true, force: true });
  fs.mkdirSync(backups, { recursive: true, mode: 0o700 });
  const log = opts.log;
  log(`demo data dir: ${dataDir}`);
  const node = await startNode(log, dataDir);
  try {
    await step(log, ['dev', 'seed', '--data-dir', dataDir, '--size', opts.size, '--repos', '20']);
    await step(log, ['status', '--data-dir', dataDir]);
    await step(log, ['backup', 'create', '--data-dir', dataDir, '--hot', '--output', path.join(backups, 'guts-demo.tar.zst')]);
  } finally {
    log(`\n$ kill -TERM ${node.child.pid}   # stop the node`);
    node.child.kill('SIGTERM');
    await new Promise((r) => node.child.on('exit', r));
  }
  const archive = path.join(backups, 'guts-demo.tar.zst');
  await step(log, ['backup', 'verify', archive]);
  await step(log, ['backup', 'restore', archive, '--target', restored, '--verify']);
  await step(log, ['verify', '--data-dir', restored, '--full']);
  log(`\ndemo finished: archive ${archive}, restored store ${restored}`);
  if (!opts.keep) {
    fs.rmSync(base, { recursive: true, force: true });
    log(`removed ${base} (use --keep to look around)`);
  }
}
