// HTTP front end of the node: health (upstream Guts shapes), Prometheus
// metrics, and a small object API so real load can be applied:
//   POST /api/repos/:owner/:name/objects  {objects:[{type,data(base64)}], refs?:[{name,target}]} -> {ids, added}
//   GET  /api/objects/:id                 raw body, X-Git-Type header
//   GET  /api/repos/:owner/:name/refs     {refs:[{name,target|symbolic}]}
// Writes during maintenance get 503 with Retry-After.
import * as http from 'node:http';
import { AddressInfo } from 'node:net';

import { errorCode, GutsError } from '../errors';
import { ObjectType, ObjectTypeName } from '../native';
import { GitObject } from '../store';
import type { GutsNode, RefSpec } from './node';

export const MAX_BODY_BYTES = 64 * 1024 * 1024;
export const MAX_BATCH_OBJECTS = 100_000;

export interface ListenAddr {
  host: string;
  port: number;
}

export function parseAddr(addr: string): ListenAddr {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]*)):(\d{1,5})$/.exec(addr.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new GutsError('GUTS_INVALID_ARGUMENT', `invalid listen address "${addr}" (expected host:port)`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

export function formatAddr(a: AddressInfo | ListenAddr): string {
  const host = 'address' in a ? a.address : a.host;
  return `${host.includes(':') ? `[${host}]` : host}:${a.port}`;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code = 'GUTS_INVALID_ARGUMENT',
  ) {
    super(message);
  }
}

export class ApiServer {
  private readonly server: http.Server;
  private closed: Promise<void> | null = null;

  constructor(
    private readonly node: GutsNode,
    private readonly serve: { api: boolean; metrics: boolean },
  ) {
    this.server = http.createServer({ keepAliveTimeout: 5000 }, (req, res) => void this.handle(req, res));
  }

  listen(addr: ListenAddr): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', (e: NodeJS.ErrnoException) =>
        reject(new GutsError(e.code === 'EADDRINUSE' ? 'GUTS_EXISTS' : 'GUTS_IO', `cannot listen on ${formatAddr(addr)}: ${e.code ?? e.message}`)),
      );
      this.server.listen(addr.port, addr.host, () => resolve(this.server.address() as AddressInfo));
    });
  }

  /** Stops accepting; waits up to graceMs for in-flight requests, then cuts what is left. */
  close(graceMs: number): Promise<void> {
    if (!this.server.listening && !this.closed) return Promise.resolve();
    if (!this.closed) {
      this.closed = new Promise((resolve) => this.server.close(() => resolve()));
    }
    this.server.closeIdleConnections();
    if (graceMs <= 0) {
      this.server.closeAllConnections();
      return this.closed;
    }
    const timer = setTimeout(() => this.server.closeAllConnections(), graceMs);
    return this.closed.finally(() => clearTimeout(timer));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const started = performance.now();
    if (this.node.isStopping) res.setHeader('Connection', 'close');
    try {
      await this.route(req, res);
    } catch (e) {
      this.sendError(res, e);
    } finally {
      const code = String(res.statusCode);
      this.node.httpRequests.set(code, (this.node.httpRequests.get(code) ?? 0) + 1);
      if (this.node.log.enabled('debug')) {
        this.node.log.debug('http', { method: req.method, url: req.url, status: res.statusCode, ms: Math.round(performance.now() - started) });
      }
    }
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://node');
    const p = url.pathname;
    const method = req.method ?? 'GET';
    const get = method === 'GET' || method === 'HEAD';

    if (p === '/health' || p === '/health/live' || p === '/health/ready') {
      if (!get) throw new HttpError(405, `${method} not allowed on ${p}`);
      return this.health(p, res);
    }
    if (p === '/metrics' && this.serve.metrics) {
      if (!get) throw new HttpError(405, `${method} not allowed on ${p}`);
      const text = await this.node.metricsText();
      res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' });
      res.end(text);
      return;
    }
    if (this.serve.api && p.startsWith('/api/')) {
      if (!this.node.ready) throw new GutsError('GUTS_CLOSED', 'node is not ready');
      let m = /^\/api\/repos\/([^/]+)\/([^/]+)\/objects$/.exec(p);
      if (m) {
        if (method !== 'POST') throw new HttpError(405, `${method} not allowed on ${p}`);
        return this.push(`${decodeURIComponent(m[1])}/${decodeURIComponent(m[2])}`, req, res);
      }
      m = /^\/api\/repos\/([^/]+)\/([^/]+)\/refs$/.exec(p);
      if (m) {
        if (!get) throw new HttpError(405, `${method} not allowed on ${p}`);
        const refs = await this.node.getRefs(`${decodeURIComponent(m[1])}/${decodeURIComponent(m[2])}`);
        return sendJson(res, 200, { refs });
      }
      m = /^\/api\/objects\/([0-9a-fA-F]{40})$/.exec(p);
      if (m) {
        if (!get) throw new HttpError(405, `${method} not allowed on ${p}`);
        const o = await this.node.getObject(m[1].toLowerCase());
        if (!o) throw new HttpError(404, `object ${m[1]} not found`, 'GUTS_NOT_FOUND');
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': o.data.length, 'X-Git-Type': o.type, ETag: `"${o.id}"` });
        res.end(method === 'HEAD' ? undefined : o.data);
        return;
      }
    }
    throw new HttpError(404, `no route for ${method} ${p}`, 'GUTS_NOT_FOUND');
  }

  private health(p: string, res: http.ServerResponse): void {
    const ready = this.node.ready;
    const uptime = Math.round((Date.now() - this.node.startedAt) / 1000);
    if (p === '/health/live') {
      // Live as long as the process answers; a store problem is readiness, not liveness.
      return sendJson(res, 200, { status: 'up', checks: { process: { status: 'up', pid: process.pid, uptime_s: uptime } } });
    }
    const m = this.node.maintenance.state();
    const stopping = this.node.isStopping;
    const checks: Record<string, Record<string, unknown>> = {
      store: { status: ready ? 'up' : 'down', ...(ready ? {} : { reason: stopping ? 'stopping' : 'starting' }) },
      // Reads keep working in maintenance, so the node stays ready; writes are reported separately.
      maintenance: { status: 'up', active: m.active, ...(m.until ? { until: m.until } : {}) },
      writes: { status: ready && !m.active ? 'up' : 'down', ...(m.active ? { reason: 'maintenance' } : {}) },
    };
    const wal = this.node.wal?.status();
    if (wal) {
      if (wal.backlog) checks.writes = { status: 'down', reason: 'wal_backlog', message: this.node.gate.walBacklogReason };
      checks.wal = {
        status: wal.backlog ? 'down' : 'up',
        timeline: wal.timeline,
        pending_segments: wal.pending_segments,
        pending_bytes: wal.pending_bytes,
        max_pending_bytes: wal.max_pending_bytes,
        archive_lag_seconds: wal.archive_lag_seconds,
        last_error: wal.last_error,
        ...(wal.needs_base_backup ? { note: `no base backup covers WAL timeline ${wal.timeline} yet: run guts-node backup create` } : {}),
      };
    }
    if (p === '/health') {
      checks.checkpoints = { status: 'up', active: this.node.checkpoints.active };
      checks.process = { status: 'up', pid: process.pid, uptime_s: uptime };
    }
    sendJson(res, ready ? 200 : 503, { status: ready ? 'up' : 'down', checks });
  }

  private async push(repo: string, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const body = await readBody(req, MAX_BODY_BYTES);
    let parsed: { objects?: unknown; refs?: unknown };
    try {
      parsed = JSON.parse(body.toString('utf8')) as typeof parsed;
    } catch {
      throw new HttpError(400, 'request body is not valid JSON');
    }
    if (!parsed || typeof parsed !== 'object') throw new HttpError(400, 'request body must be a JSON object');
    const objects = parseObjects(parsed.objects ?? []);
    const refs = parseRefs(parsed.refs ?? []);
    const r = await this.node.push(repo, objects, refs);
    sendJson(res, 200, r);
  }

  private sendError(res: http.ServerResponse, e: unknown): void {
    let status = 500;
    let code: string = errorCode(e);
    if (e instanceof HttpError) {
      status = e.status;
      code = e.code;
    } else if (code === 'GUTS_INVALID_ARGUMENT') status = 400;
    else if (code === 'GUTS_NOT_FOUND') status = 404;
    else if (code === 'GUTS_MAINTENANCE') {
      status = 503;
      res.setHeader('Retry-After', String(this.node.maintenance.retryAfterSeconds()));
    } else if (code === 'GUTS_WAL_BACKLOG') {
      status = 503;
      res.setHeader('Retry-After', '5');
    } else if (code === 'GUTS_CLOSED') {
      status = 503;
      res.setHeader('Retry-After', '5');
    }
    if (status === 413) {
      // The client is still sending: answer, half-close, then drop the connection.
      res.setHeader('Connection', 'close');
      const sock = res.socket;
      res.once('finish', () => {
        sock?.end();
        setTimeout(() => sock?.destroy(), 1000).unref();
      });
    }
    if (status === 500) this.node.log.error('request failed', { code, error: (e as Error)?.message });
    if (res.headersSent) {
      res.destroy();
      return;
    }
    sendJson(res, status, { error: { code, message: (e as Error)?.message ?? String(e) } });
  }
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body) + '\n';
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (declared > limit) {
    req.resume();
    return Promise.reject(new HttpError(413, `request body of ${declared} bytes exceeds the limit of ${limit}`));
  }
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.pause();
        reject(new HttpError(413, `request body exceeds the limit of ${limit} bytes`));
        return;
      }
      parts.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(parts)));
    req.on('error', reject);
    req.on('close', () => {
      if (!req.complete) reject(new HttpError(400, 'request aborted by the client'));
    });
  });
}

function parseObjects(v: unknown): GitObject[] {
  if (!Array.isArray(v)) throw new HttpError(400, '"objects" must be an array');
  if (v.length > MAX_BATCH_OBJECTS) throw new HttpError(400, `at most ${MAX_BATCH_OBJECTS} objects per batch`);
  return v.map((o: { type?: unknown; data?: unknown }, i) => {
    if (!o || typeof o.type !== 'string' || !(o.type in ObjectType)) throw new HttpError(400, `objects[${i}].type must be commit, tree, blob or tag`);
    if (typeof o.data !== 'string') throw new HttpError(400, `objects[${i}].data must be a base64 string`);
    return { type: o.type as ObjectTypeName, data: Buffer.from(o.data, 'base64') };
  });
}

function parseRefs(v: unknown): RefSpec[] {
  if (!Array.isArray(v)) throw new HttpError(400, '"refs" must be an array');
  return v.map((r: { name?: unknown; target?: unknown; symbolic?: unknown; delete?: unknown }, i) => {
    if (!r || typeof r.name !== 'string') throw new HttpError(400, `refs[${i}].name must be a string`);
    if (r.delete === true) return { name: r.name, delete: true };
    if (typeof r.symbolic === 'string') return { name: r.name, symbolic: r.symbolic };
    if (typeof r.target !== 'string' || !/^[0-9a-f]{40}$/.test(r.target)) throw new HttpError(400, `refs[${i}].target must be a 40-hex object id`);
    return { name: r.name, target: r.target };
  });
}
