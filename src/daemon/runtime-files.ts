// node.pid and admin.sock: how other processes find a running node, and how a
// starting node recognises the leftovers of a crashed one.
import * as fs from 'node:fs';
import * as net from 'node:net';

import { isProcessAlive, writeFileAtomic } from '../fsutil';
import { dataDirLayout } from '../store';
import { withSocketPath } from './protocol';

export function readPidFile(dataDir: string): number {
  try {
    const n = Number(fs.readFileSync(dataDirLayout(dataDir).pidFile, 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : 0;
  } catch {
    return 0;
  }
}

export function writePidFile(dataDir: string, pid = process.pid): void {
  writeFileAtomic(dataDirLayout(dataDir).pidFile, `${pid}\n`, 0o600);
}

/** Removes node.pid only if it still names this process. */
export function removePidFileIfOurs(dataDir: string, pid = process.pid): void {
  if (readPidFile(dataDir) === pid) fs.rmSync(dataDirLayout(dataDir).pidFile, { force: true });
}

export type SocketState = 'absent' | 'stale' | 'alive';

/** Whether something accepts connections on the socket (a stale file refuses). */
export function probeSocket(socketPath: string, timeoutMs = 2000): Promise<SocketState> {
  if (!fs.existsSync(socketPath)) return Promise.resolve('absent');
  return new Promise((resolve) => {
    const s = withSocketPath(socketPath, (p) => net.connect(p));
    const done = (st: SocketState) => {
      clearTimeout(timer);
      s.destroy();
      resolve(st);
    };
    const timer = setTimeout(() => done('alive'), timeoutMs); // accepted but slow: treat as alive
    s.once('connect', () => done('alive'));
    s.once('error', (e: NodeJS.ErrnoException) => done(e.code === 'ENOENT' ? 'absent' : e.code === 'ECONNREFUSED' ? 'stale' : 'alive'));
  });
}

export interface RunningNode {
  /** pid from node.pid when that process is alive */
  pid: number;
  socket: SocketState;
}

/** What node.pid and admin.sock say about a node on this data dir. */
export async function inspectRuntimeFiles(dataDir: string): Promise<RunningNode> {
  const pid = readPidFile(dataDir);
  return { pid: isProcessAlive(pid) ? pid : 0, socket: await probeSocket(dataDirLayout(dataDir).socket) };
}
