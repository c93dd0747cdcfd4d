// Admin control over <data_dir>/admin.sock (mode 0600: local operators only).
// Newline-delimited JSON (protocol.ts); each connection is a session whose
// requests run in order. Checkpoints a session creates are released when it closes.
import * as fs from 'node:fs';
import * as net from 'node:net';

import { GutsError } from '../errors';
import { ObjectType, ObjectTypeName } from '../native';
import { GitObject } from '../store';
import { VERSION } from '../version';
import type { GutsNode } from './node';
import { errorPayload, LineSplitter, withSocketPath, PROTOCOL_VERSION, Request, Response, WireBlock, WireObject } from './protocol';

export class AdminServer {
  private readonly server: net.Server;
  private readonly sessions = new Set<Session>();
  private closing: Promise<void> | null = null;

  constructor(
    private readonly node: GutsNode,
    readonly socketPath: string,
  ) {
    this.server = net.createServer((sock) => {
      const s = new Session(sock, node, () => this.sessions.delete(s));
      this.sessions.add(s);
    });
  }

  async listen(): Promise<void> {
    // The socket file is created by bind(2) with 0777 & ~umask: with umask 077 it
    // is never group- or world-accessible, not even before the chmod below.
    const old = process.umask(0o077);
    try {
      await new Promise<void>((resolve, reject) => {
        this.server.once('error', reject);
        withSocketPath(this.socketPath, (p) => this.server.listen(p, () => {
          this.server.off('error', reject);
          resolve();
        }));
      });
    } finally {
      process.umask(old);
    }
    fs.chmodSync(this.socketPath, 0o600);
  }

  /** Stops accepting; sessions finish their current request (up to graceMs), then are closed. */
  close(graceMs: number): Promise<void> {
    if (!this.closing) {
      const listening = this.server.listening;
      this.closing = new Promise<void>((resolve) => {
        if (!listening) return resolve();
        this.server.close(() => resolve());
      }).finally(() => {
        if (listening) fs.rmSync(this.socketPath, { force: true });
      });
    }
    for (const s of this.sessions) s.shutdown();
    if (graceMs <= 0) {
      for (const s of this.sessions) s.destroy();
      return this.closing;
    }
    const timer = setTimeout(() => {
      for (const s of this.sessions) s.destroy();
    }, graceMs);
    return this.closing.finally(() => clearTimeout(timer));
  }
}

class Session {
  private readonly queue: string[] = [];
  private busy = false;
  private closing = false;
  private readonly splitter: LineSplitter;

  constructor(
    private readonly sock: net.Socket,
    private readonly node: GutsNode,
    onClose: () => void,
  ) {
    this.splitter = new LineSplitter((line) => this.enqueue(line));
    sock.on('data', (chunk: Buffer) => {
      try {
        this.splitter.push(chunk);
      } catch (e) {
        this.send({ id: 0, ok: false, error: errorPayload(e) });
        sock.end();
      }
    });
    sock.on('error', () => undefined); // a client that vanished is a normal close
    sock.on('close', () => {
      onClose();
      void node.checkpoints.releaseOwner(this);
    });
  }

  shutdown(): void {
    this.closing = true;
    this.queue.length = 0;
    if (!this.busy) this.sock.end();
  }

  destroy(): void {
    this.sock.destroy();
  }

  private enqueue(line: string): void {
    if (this.closing) return;
    this.queue.push(line);
    if (this.queue.length > 16) this.sock.pause(); // backpressure on a flooding client
    void this.pump();
  }

  private async pump(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    while (this.queue.length && !this.closing) {
      const line = this.queue.shift()!;
      if (this.queue.length < 4) this.sock.resume();
      this.send(await this.handle(line));
    }
    this.busy = false;
    if (this.closing) this.sock.end();
  }

  private send(r: Response): void {
    if (!this.sock.destroyed && this.sock.writable) this.sock.write(JSON.stringify(r) + '\n');
  }

  private async handle(line: string): Promise<Response> {
    let req: Request;
    try {
      req = JSON.parse(line) as Request;
      if (!req || typeof req.op !== 'string') throw new Error('missing op');
    } catch (e) {
      return { id: 0, ok: false, error: { code: 'GUTS_INVALID_ARGUMENT', message: `bad admin request: ${(e as Error).message}` } };
    }
    const id = typeof req.id === 'number' ? req.id : 0;
    try {
      return { id, ok: true, result: await this.dispatch(req.op, req.args ?? {}) };
    } catch (e) {
      if (this.node.log.enabled('debug')) this.node.log.debug('admin request failed', { op: req.op, error: (e as Error).message });
      return { id, ok: false, error: errorPayload(e) };
    }
  }

  private async dispatch(op: string, a: Record<string, unknown>): Promise<unknown> {
    const n = this.node;
    switch (op) {
      case 'hello':
      case 'ping':
        return { pid: process.pid, version: VERSION, protocol: PROTOCOL_VERSION, dataDir: n.dataDir, apiAddr: n.apiAddr, ready: n.ready };
      case 'status':
        return n.status();
      case 'checkpoint':
        return n.checkpoints.create(
          { db: a.db !== false, consensus: a.consensus !== false },
          this,
          a.leaseMs === undefined ? undefined : Number(a.leaseMs),
          a.describe !== false,
        );
      case 'renew':
        return { renewed: n.checkpoints.renew(Array.isArray(a.ids) ? a.ids.map(String) : null, this) };
      case 'release':
        return { released: await n.checkpoints.release(str(a.id, 'id')) };
      case 'maintenance.enter':
        return n.maintenance.enter(Number(a.timeoutMs));
      case 'maintenance.exit':
        return { wasActive: n.maintenance.exit() };
      case 'wal.status':
        return n.walStatus();
      case 'wal.mark':
        return n.walMark(str(a.name, 'name'));
      case 'recordBackup':
        await n.recordBackup(a.info as Parameters<GutsNode['recordBackup']>[0], a.wal as Parameters<GutsNode['recordBackup']>[1]);
        return {};
      case 'putObjects':
        return n.putObjects(a.repo ? str(a.repo, 'repo') : null, decodeObjects(a.objects));
      case 'putRepo':
        return n.putRepo(str(a.repo, 'repo'), (a.meta as Record<string, unknown>) ?? {});
      case 'setRefs':
        if (!Array.isArray(a.refs)) throw new GutsError('GUTS_INVALID_ARGUMENT', 'setRefs needs refs[]');
        await n.setRefs(str(a.repo, 'repo'), a.refs as Parameters<GutsNode['setRefs']>[1]);
        return {};
      case 'putBlocks':
        await n.putBlocks(decodeBlocks(a.blocks), a.finalized === undefined ? -1 : Number(a.finalized));
        return {};
      case 'counts':
        return n.counts();
      case 'compact':
        return n.compact();
      default:
        throw new GutsError('GUTS_INVALID_ARGUMENT', `unknown admin op "${op}"`);
    }
  }
}

function str(v: unknown, name: string): string {
  if (typeof v !== 'string' || !v) throw new GutsError('GUTS_INVALID_ARGUMENT', `${name} must be a non-empty string`);
  return v;
}

function decodeObjects(v: unknown): GitObject[] {
  if (!Array.isArray(v)) throw new GutsError('GUTS_INVALID_ARGUMENT', 'putObjects needs objects[]');
  return (v as WireObject[]).map((o, i) => {
    if (!o || typeof o.type !== 'string' || !(o.type in ObjectType) || typeof o.data !== 'string') {
      throw new GutsError('GUTS_INVALID_ARGUMENT', `objects[${i}] must be {type, data(base64)}`);
    }
    return { type: o.type as ObjectTypeName, data: Buffer.from(o.data, 'base64') };
  });
}

function decodeBlocks(v: unknown): Array<{ height: number; data: Buffer }> {
  if (!Array.isArray(v)) throw new GutsError('GUTS_INVALID_ARGUMENT', 'putBlocks needs blocks[]');
  return (v as WireBlock[]).map((b, i) => {
    if (!b || !Number.isInteger(b.height) || b.height < 0 || typeof b.data !== 'string') {
      throw new GutsError('GUTS_INVALID_ARGUMENT', `blocks[${i}] must be {height, data(base64)}`);
    }
    return { height: b.height, data: Buffer.from(b.data, 'base64') };
  });
}
