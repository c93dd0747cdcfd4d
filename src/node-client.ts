// Client side of the node's admin socket (<data_dir>/admin.sock): the CLI talks
// to a running node through it instead of fighting it for the store lock.
// Wire protocol: src/daemon/protocol.ts (newline-delimited JSON, base64 bodies).
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

import { errorFromPayload, LineSplitter, Response, withSocketPath } from './daemon/protocol';
import { GutsError } from './errors';
import { Counts, CheckpointInfo } from './native';
import { dataDirLayout, GitObject } from './store';
import type { WalStatus } from './wal/archiver';

/** What import / dev seed write into: a GutsStore or a running node. */
export interface ObjectSink {
  putObjects(repo: string | null, objects: GitObject[]): Promise<{ ids: string[]; added: number }>;
  putRepo(repo: string, meta?: Record<string, unknown>): Promise<boolean>;
  setRefs(repo: string, refs: Array<{ name: string; target?: string; symbolic?: string; delete?: boolean }>): Promise<void>;
  putBlocks(blocks: Array<{ height: number; data: Buffer }>, finalized?: number): Promise<void>;
  counts(): Promise<Counts>;
}

export interface NodeCheckpoint {
  id: string;
  /** absolute dir holding db/ and/or consensus/ */
  dir: string;
  info: CheckpointInfo;
  /** counts and consensus figures of exactly this checkpoint (read from it; zeros for a part not taken); absent with describe: false */
  counts?: Counts;
  consensus?: { blocks: number; finalizedHeight: number };
  /** lease length; the client renews it automatically while it holds the checkpoint */
  leaseMs?: number;
  expires?: string;
  /** how long the node took (writes are never paused for a checkpoint) */
  createdMs?: number;
  /** with WAL archiving on: timeline and first segment a replay onto this checkpoint needs */
  wal?: { timeline: number; segment: number };
}

export interface NodeStatus {
  pid: number;
  dataDir: string;
  maintenance: boolean;
  maintenanceUntil?: string;
  counts: Counts;
  apiAddr: string;
  version?: string;
  startedAt?: string;
  ready?: boolean;
  consensus?: { blocks: number; finalizedHeight: number };
  checkpoints?: Array<{ id: string; dir: string; created: string; expires: string }>;
  writesInFlight?: number;
  lastBackup?: { file: string; size_bytes: number; created: string; kind: string; checksum?: string } | null;
}

export interface BackupRecord {
  file: string;
  size_bytes: number;
  created: string;
  kind: string;
  checksum?: string;
}

export interface NodeClient extends ObjectSink {
  /** pid, version and API address of the node, from the connection handshake */
  readonly node: { pid: number; version: string; apiAddr: string; dataDir: string };
  status(): Promise<NodeStatus>;
  /** leaseMs: how long the node keeps it without a renewal (default 10 min; renewed automatically) */
  /** describe: false leaves reading the counts from the checkpoint to the caller (older nodes send them anyway) */
  checkpoint(which: { db: boolean; consensus: boolean; leaseMs?: number; describe?: boolean }): Promise<NodeCheckpoint>;
  /** Releases (deletes) a checkpoint. If the node is gone, removes the dir directly. */
  releaseCheckpoint(id: string): Promise<void>;
  maintenanceEnter(timeoutMs: number): Promise<{ until: string; alreadyActive?: boolean; flushMs?: number }>;
  maintenanceExit(): Promise<{ wasActive: boolean }>;
  /** wal: the backup's MANIFEST `wal` position (clears the node's "needs a base backup" note for that timeline) */
  recordBackup(info: BackupRecord, wal?: { timeline: number } | null): Promise<void>;
  /** `wal status` of the running node (src/wal/archiver.ts WalStatus) */
  walStatus(): Promise<WalStatus>;
  /** `wal mark NAME`: restore point written and its segment closed */
  walMark(name: string): Promise<{ name: string; seq: number; time: string; segment: string }>;
  /** `guts-node compact` through the node: every SST rewritten with the store's options (no timeout: it takes minutes on a large store) */
  compact(): Promise<import('./compact').CompactStoreResult>;
  close(): void;
}

/** Largest raw payload per putObjects request; bigger calls are split into several atomic batches. */
export const MAX_BATCH_BYTES = 32 * 1024 * 1024;

/** A client for the node serving dataDir, or null when no node runs there. */
export async function connectNode(dataDir: string, opts: { timeoutMs?: number } = {}): Promise<NodeClient | null> {
  const dir = path.resolve(dataDir);
  const socketPath = dataDirLayout(dir).socket;
  if (!fs.existsSync(socketPath)) return null;
  let sock: net.Socket;
  try {
    sock = await new Promise<net.Socket>((resolve, reject) => {
      const s = withSocketPath(socketPath, (p) => net.connect(p));
      s.once('connect', () => {
        s.off('error', reject);
        resolve(s);
      });
      s.once('error', reject);
    });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ECONNREFUSED') return null; // stale socket of a crashed node
    if (code === 'EACCES' || code === 'EPERM') {
      throw new GutsError('GUTS_PERMISSION', `cannot connect to ${socketPath}: permission denied (run as the node's user)`, socketPath);
    }
    throw new GutsError('GUTS_IO', `cannot connect to ${socketPath}: ${code ?? (e as Error).message}`, socketPath);
  }
  const client = new AdminClient(sock, dir, opts.timeoutMs ?? 30_000);
  try {
    const hello = (await client.call('hello', {}, 5000)) as AdminClient['node'];
    client.node = hello;
  } catch (e) {
    client.close();
    throw e;
  }
  return client;
}

/** connectNode, or GUTS_NOT_RUNNING naming the data dir. */
export async function requireNode(dataDir: string): Promise<NodeClient> {
  const c = await connectNode(dataDir);
  if (!c) throw new GutsError('GUTS_NOT_RUNNING', `no node is running on ${path.resolve(dataDir)} (no live ${dataDirLayout(dataDir).socket})`, dataDir);
  return c;
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout | null;
}

class AdminClient implements NodeClient {
  node = { pid: 0, version: '', apiAddr: '', dataDir: '' };
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly held = new Map<string, { dir: string; leaseMs: number }>();
  private keepalive: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    private readonly sock: net.Socket,
    private readonly dataDir: string,
    private readonly timeoutMs: number,
  ) {
    const splitter = new LineSplitter((line) => this.onLine(line));
    sock.on('data', (c: Buffer) => {
      try {
        splitter.push(c);
      } catch (e) {
        this.fail(e as Error);
      }
    });
    sock.on('error', (e) => this.fail(e));
    sock.on('close', () => this.fail(new GutsError('GUTS_NOT_RUNNING', 'connection to the node was closed (node stopped?)')));
    sock.unref();
  }

  /** Sends one request; the node answers requests of a connection in order. */
  call(op: string, args: Record<string, unknown> = {}, timeoutMs = this.timeoutMs): Promise<unknown> {
    if (this.closed) return Promise.reject(new GutsError('GUTS_NOT_RUNNING', 'connection to the node is closed'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer =
        timeoutMs > 0
          ? setTimeout(() => {
              this.pending.delete(id);
              this.refresh();
              reject(new GutsError('GUTS_TIMEOUT', `node did not answer "${op}" within ${timeoutMs} ms`));
            }, timeoutMs)
          : null;
      this.pending.set(id, { resolve, reject, timer });
      this.refresh();
      this.sock.write(JSON.stringify({ id, op, args }) + '\n');
    });
  }

  async status(): Promise<NodeStatus> {
    return (await this.call('status')) as NodeStatus;
  }

  async checkpoint(which: { db: boolean; consensus: boolean; leaseMs?: number; describe?: boolean }): Promise<NodeCheckpoint> {
    const cp = (await this.call('checkpoint', { db: which.db, consensus: which.consensus, leaseMs: which.leaseMs, describe: which.describe })) as NodeCheckpoint;
    this.held.set(cp.id, { dir: cp.dir, leaseMs: cp.leaseMs ?? 600_000 });
    this.scheduleKeepalive();
    return cp;
  }

  async releaseCheckpoint(id: string): Promise<void> {
    const h = this.held.get(id);
    this.held.delete(id);
    this.scheduleKeepalive();
    if (!this.closed) {
      try {
        await this.call('release', { id });
        return;
      } catch (e) {
        // the node died after our last look: its socket closed (or failed) under the request
        if (!this.closed) throw e;
      }
    }
    // The node is gone (it keeps held checkpoints at shutdown): remove ours directly.
    if (h && isNodeCheckpointDir(this.dataDir, h.dir)) await fs.promises.rm(h.dir, { recursive: true, force: true });
  }

  /** Renews the leases of every checkpoint this connection holds. */
  async renew(): Promise<void> {
    if (this.held.size) await this.call('renew', { ids: [...this.held.keys()] });
  }

  async maintenanceEnter(timeoutMs: number): Promise<{ until: string; alreadyActive?: boolean; flushMs?: number }> {
    // The node flushes memtables before answering: allow for a slow disk.
    return (await this.call('maintenance.enter', { timeoutMs }, Math.max(this.timeoutMs, 120_000))) as { until: string };
  }

  async maintenanceExit(): Promise<{ wasActive: boolean }> {
    return (await this.call('maintenance.exit')) as { wasActive: boolean };
  }

  async recordBackup(info: BackupRecord, wal?: { timeline: number } | null): Promise<void> {
    await this.call('recordBackup', wal ? { info, wal } : { info });
  }

  async compact(): Promise<import('./compact').CompactStoreResult> {
    return (await this.call('compact', {}, 0)) as import('./compact').CompactStoreResult;
  }

  async walStatus(): Promise<WalStatus> {
    return (await this.call('wal.status')) as WalStatus;
  }

  async walMark(name: string): Promise<{ name: string; seq: number; time: string; segment: string }> {
    return (await this.call('wal.mark', { name }, Math.max(this.timeoutMs, 60_000))) as { name: string; seq: number; time: string; segment: string };
  }

  async putObjects(repo: string | null, objects: GitObject[]): Promise<{ ids: string[]; added: number }> {
    const ids: string[] = [];
    let added = 0;
    let start = 0;
    while (start < objects.length || (start === 0 && objects.length === 0)) {
      let end = start;
      let bytes = 0;
      while (end < objects.length && (end === start || bytes + objects[end].data.length <= MAX_BATCH_BYTES)) bytes += objects[end++].data.length;
      const batch = objects.slice(start, end).map((o) => ({ type: o.type, data: o.data.toString('base64') }));
      const r = (await this.call('putObjects', { repo, objects: batch }, 0)) as { ids: string[]; added: number };
      ids.push(...r.ids);
      added += r.added;
      if (objects.length === 0) break;
      start = end;
    }
    return { ids, added };
  }

  async putRepo(repo: string, meta: Record<string, unknown> = {}): Promise<boolean> {
    return (await this.call('putRepo', { repo, meta })) as boolean;
  }

  async setRefs(repo: string, refs: Array<{ name: string; target?: string; symbolic?: string; delete?: boolean }>): Promise<void> {
    await this.call('setRefs', { repo, refs });
  }

  async putBlocks(blocks: Array<{ height: number; data: Buffer }>, finalized = -1): Promise<void> {
    await this.call('putBlocks', { blocks: blocks.map((b) => ({ height: b.height, data: b.data.toString('base64') })), finalized }, 0);
  }

  async counts(): Promise<Counts> {
    return (await this.call('counts')) as Counts;
  }

  /** Closes the connection; the node releases any checkpoint still held by it. */
  close(): void {
    if (this.keepalive) clearInterval(this.keepalive);
    this.keepalive = null;
    this.sock.end();
    this.fail(new GutsError('GUTS_NOT_RUNNING', 'connection to the node is closed'));
  }

  private onLine(line: string): void {
    let r: Response;
    try {
      r = JSON.parse(line) as Response;
    } catch {
      return this.fail(new GutsError('GUTS_IO', 'node sent an invalid admin response'));
    }
    const p = this.pending.get(r.id);
    if (!p) {
      // id 0: the node rejected a request it could not even parse; nothing to match.
      if (r.id === 0 && r.error) this.fail(errorFromPayload(r.error));
      return;
    }
    this.pending.delete(r.id);
    if (p.timer) clearTimeout(p.timer);
    this.refresh();
    if (r.ok) p.resolve(r.result);
    else p.reject(errorFromPayload(r.error ?? { code: 'GUTS_INTERNAL', message: 'node returned an error without details' }));
  }

  private fail(e: Error): void {
    if (!this.closed) {
      this.closed = true;
      if (this.keepalive) clearInterval(this.keepalive);
      this.keepalive = null;
      this.sock.destroy();
    }
    for (const p of this.pending.values()) {
      if (p.timer) clearTimeout(p.timer);
      p.reject(e);
    }
    this.pending.clear();
  }

  /** Keep the process alive only while a request is outstanding. */
  private refresh(): void {
    if (this.pending.size) this.sock.ref();
    else this.sock.unref();
  }

  private scheduleKeepalive(): void {
    if (this.keepalive) clearInterval(this.keepalive);
    this.keepalive = null;
    if (!this.held.size || this.closed) return;
    const every = Math.max(50, Math.min(...[...this.held.values()].map((h) => h.leaseMs)) / 3);
    this.keepalive = setInterval(() => void this.renew().catch(() => undefined), every);
    this.keepalive.unref();
  }
}

function isNodeCheckpointDir(dataDir: string, dir: string): boolean {
  const root = dataDirLayout(dataDir).checkpoints;
  return path.dirname(path.resolve(dir)) === root && path.basename(dir).startsWith('node-');
}
