// Test helper: a real S3-compatible server (s3rver) on 127.0.0.1 at a random
// port, in its own process, with its own key pair. `env` is what a guts-node
// process needs to reach it (custom endpoint -> path-style addressing).
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';

export interface S3Server {
  endpoint: string;
  port: number;
  dir: string;
  env: Record<string, string>;
  keyId: string;
  secret: string;
  child: ChildProcess;
  /** stops the server (SIGKILL: as if the machine went away); its data stays for restart() */
  kill(): Promise<void>;
  /** stops the server and removes its data dir (unless the caller gave one) */
  stop(): Promise<void>;
  /** starts it again on the same port and directory */
  restart(): Promise<void>;
}

const MAIN = path.join(__dirname, 's3rver-main.js');

async function spawnServer(dir: string, buckets: string[], env: NodeJS.ProcessEnv): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [MAIN, dir, buckets.join(',')], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const rl = readline.createInterface({ input: child.stdout! });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`s3rver did not start within 20 s: ${err}`)), 20_000);
    rl.on('line', (l) => {
      const m = /^listening (\d+)$/.exec(l);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`s3rver exited (${code}): ${err}`));
    });
  });
  return { child, port };
}

export async function startS3(buckets: string[] = ['guts-backups'], opts: { dir?: string } = {}): Promise<S3Server> {
  const ownDir = !opts.dir;
  const dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'guts-s3rver-'));
  const keyId = 'GUTSTESTKEY' + Math.random().toString(36).slice(2, 8).toUpperCase();
  const secret = 'guts-secret-' + Math.random().toString(36).slice(2) + Math.random().toString(36).slice(2);
  const keyEnv = { S3_TEST_KEY_ID: keyId, S3_TEST_SECRET: secret };
  let { child, port } = await spawnServer(dir, buckets, keyEnv);
  const endpoint = `http://127.0.0.1:${port}`;
  const exit = (c: ChildProcess, sig: NodeJS.Signals) =>
    new Promise<void>((resolve) => {
      if (c.exitCode !== null || c.signalCode !== null) return resolve();
      c.once('exit', () => resolve());
      c.kill(sig);
    });
  const server: S3Server = {
    endpoint,
    port,
    dir,
    keyId,
    secret,
    child,
    env: {
      AWS_ENDPOINT_URL: endpoint,
      AWS_ACCESS_KEY_ID: keyId,
      AWS_SECRET_ACCESS_KEY: secret,
      AWS_REGION: 'us-east-1',
      // nothing from the developer's own AWS set-up
      AWS_CONFIG_FILE: '/nonexistent/aws-config',
      AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/aws-credentials',
      AWS_EC2_METADATA_DISABLED: 'true',
    },
    kill: () => exit(server.child, 'SIGKILL'),
    stop: async () => {
      await exit(server.child, 'SIGTERM');
      if (ownDir) fs.rmSync(dir, { recursive: true, force: true });
    },
    restart: async () => {
      ({ child } = await spawnServer(dir, [], { ...keyEnv, S3_TEST_PORT: String(port) }));
      server.child = child;
    },
  };
  return server;
}

/** Every object key in a bucket, straight from s3rver's directory (independent of the SDK). */
export function storedKeys(server: S3Server, bucket: string): string[] {
  const out: string[] = [];
  const root = path.join(server.dir, bucket);
  const walk = (rel: string) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(path.join(root, rel), { withFileTypes: true });
    } catch (e) {
      // s3rver removes a prefix's directory when its last object goes (a lock
      // released while a test polls the bucket): gone is empty, not an error
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    for (const e of entries) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(r);
      else if (e.name.endsWith('._S3rver_object')) out.push(r.slice(0, -'._S3rver_object'.length));
    }
  };
  if (fs.existsSync(root)) walk('');
  return out.sort();
}

/** Path of the stored bytes of an object (to flip a byte in it). */
export function storedObjectPath(server: S3Server, bucket: string, key: string): string {
  return path.join(server.dir, bucket, `${key}._S3rver_object`);
}
