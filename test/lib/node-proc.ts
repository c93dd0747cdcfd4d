// Test helpers: a real `guts-node serve` process on 127.0.0.1:0, the CLI, and
// small HTTP calls (no keep-alive, so nothing outlives a test).
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as http from 'node:http';
import * as path from 'node:path';
import * as readline from 'node:readline';

export const BIN = path.resolve(__dirname, '../../bin/guts-node.js');

export interface NodeProc {
  child: ChildProcess;
  url: string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM and wait for the exit */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Spawns serve, waits for the "listening" line and for /health/ready. */
export async function startNode(dataDir: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<NodeProc> {
  const child = spawn(process.execPath, [BIN, 'serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0', ...extra], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const rl = readline.createInterface({ input: child.stdout! });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node did not listen within 20 s; stderr:\n${err}`)), 20_000);
    rl.on('line', (l) => {
      const m = /^listening (http:\/\/\S+)$/.exec(l);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    void exited.then((e) => {
      clearTimeout(timer);
      reject(new Error(`node exited (${e.code ?? e.signal}) before listening; stderr:\n${err}`));
    });
  });
  const deadline = Date.now() + 20_000;
  for (;;) {
    const r = await request(url + '/health/ready').catch(() => null);
    if (r?.status === 200) break;
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`node exited (${child.exitCode ?? child.signalCode}) before ready; stderr:\n${err}`);
    if (Date.now() > deadline) throw new Error(`node not ready within 20 s; stderr:\n${err}`);
    await sleep(25);
  }
  return {
    child,
    url,
    stderr: () => err,
    exited,
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      // A node that does not stop is a bug to see, not a test that hangs until tap's timeout.
      let timer: NodeJS.Timeout | undefined;
      const hung = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          child.kill('SIGKILL');
          reject(new Error(`node did not stop within 60 s of SIGTERM; stderr:\n${err}`));
        }, 60_000);
      });
      return Promise.race([exited, hung]).finally(() => clearTimeout(timer));
    },
  };
}

/**
 * Stops `node` when test `t` ends, passed or failed: a failed assertion must not
 * leave a node running, which keeps the test process alive until tap's timeout
 * (and the node orphaned after it). Stopping a node that has exited is a no-op.
 */
export function stopAtEnd(t: { teardown(fn: () => unknown): void }, node: NodeProc): NodeProc {
  t.teardown(() => node.stop());
  return node;
}

export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  json<T = any>(): T; // eslint-disable-line @typescript-eslint/no-explicit-any
}

export function request(url: string, opts: { method?: string; body?: string | Buffer } = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? 'GET', agent: false, headers: opts.body ? { 'content-type': 'application/json' } : {} }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => {
        const body = Buffer.concat(parts);
        resolve({ status: res.statusCode!, headers: res.headers, body, json: () => JSON.parse(body.toString('utf8')) });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    // No answer in 60 s is a hung node: fail with the URL rather than at tap's timeout.
    req.setTimeout(60_000, () => req.destroy(new Error(`no answer from ${opts.method ?? 'GET'} ${url} within 60 s`)));
    req.end(opts.body);
  });
}

export function pushObjects(url: string, repo: string, objects: Array<{ type: string; data: Buffer }>, refs?: Array<{ name: string; target: string }>) {
  return request(`${url}/api/repos/${repo}/objects`, {
    method: 'POST',
    body: JSON.stringify({ objects: objects.map((o) => ({ type: o.type, data: o.data.toString('base64') })), ...(refs ? { refs } : {}) }),
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function waitFor(cond: () => boolean | Promise<boolean>, ms = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Value of an unlabelled or labelled sample in Prometheus text. */
export function metric(text: string, name: string): number | undefined {
  const esc = name.replace(/[{}"=]/g, (c) => '\\' + c);
  const m = new RegExp(`^${esc} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}
