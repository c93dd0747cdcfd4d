// Test helpers of the backup repository tests (repo-*.test.ts): the CLI as a
// child process (sync, or spawned with its stderr watched), and a real store
// grown with random text blobs (flushed, so each call adds an SST).
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Test } from 'tap';

import { GutsStore } from '../../src/store';
import { BIN } from './node-proc';

export const ENV = { GUTS_CONFIG: '/dev/null' };

export function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], { env: { ...process.env, ...ENV, ...env }, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function json(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = cli([...args, '--json'], env);
  let body: Record<string, any> = {};
  try {
    body = JSON.parse(r.stdout);
  } catch {
    /* left empty: the caller's assertions fail with the stderr below */
  }
  return { ...r, body };
}

export interface Spawned {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** resolves with the exit code (null when killed) */
  exited: Promise<number | null>;
  /** resolves once stderr matches `re` (rejects if the process exits first or after `ms`) */
  untilStderr(re: RegExp, ms?: number): Promise<void>;
}

export function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}): Spawned {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...ENV, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const waiters: Array<() => void> = [];
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => {
    err += c.toString();
    for (const w of waiters.slice()) w();
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    untilStderr: (re, ms = 90_000) =>
      new Promise<void>((resolve, reject) => {
        const done = () => {
          clearTimeout(timer);
          waiters.splice(waiters.indexOf(check), 1);
        };
        const check = () => {
          if (re.test(err)) {
            done();
            resolve();
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`no ${re} on stderr within ${ms} ms: ${err}`));
        }, ms);
        waiters.push(check);
        void exited.then((code) => {
          if (waiters.includes(check)) {
            done();
            if (re.test(err)) resolve();
            else reject(new Error(`exited (${code}) before ${re} on stderr: ${err}`));
          }
        });
        check();
      }),
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Obj {
  id: string;
  data: Buffer;
}

/** Adds about `bytes` of new random text blobs to repository t/r (flushed: they land in a new SST). */
export async function grow(dataDir: string, bytes: number, seed: string): Promise<Obj[]> {
  const store = await GutsStore.open(dataDir);
  try {
    await store.putRepo('t/r');
    const out: Obj[] = [];
    let n = 0;
    let total = 0;
    while (total < bytes) {
      const batch = [];
      for (let i = 0; i < 32; i++, n++) {
        const data = Buffer.from(`// ${seed} ${n}\n` + Array.from({ length: 40 }, (_, j) => `${j}: ${crypto.randomBytes(12).toString('hex')} lorem ipsum dolor\n`).join(''));
        batch.push({ type: 'blob' as const, data });
        total += data.length;
      }
      const r = await store.putObjects('t/r', batch);
      r.ids.forEach((id, i) => out.push({ id, data: batch[i].data }));
    }
    await store.flush();
    return out;
  } finally {
    await store.close();
  }
}

export function tmp(t: Test, prefix = 'guts-repo-'): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.teardown(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}
