// Admin socket wire protocol, shared by the node (admin.ts) and the client
// (../node-client.ts): newline-delimited JSON over <data_dir>/admin.sock.
//   request:  {"id": 1, "op": "checkpoint", "args": {...}}
//   response: {"id": 1, "ok": true, "result": ...}
//          or {"id": 1, "ok": false, "error": {"code": "GUTS_MAINTENANCE", "message": "..."}}
// Requests on one connection are answered in order; binary payloads are base64.
import * as path from 'node:path';

import { errorCode, GutsError } from '../errors';

export const PROTOCOL_VERSION = 1;
/** One request line; V8 strings top out near 512 MiB. */
export const MAX_LINE_BYTES = 400 * 1024 * 1024;

export interface Request {
  id: number;
  op: string;
  args?: Record<string, unknown>;
}

export interface ErrorPayload {
  code: string;
  message: string;
  path?: string;
}

export interface Response {
  id: number;
  ok: boolean;
  result?: unknown;
  error?: ErrorPayload;
}

export interface WireObject {
  type: string;
  /** base64 */
  data: string;
}

export interface WireBlock {
  height: number;
  /** base64 */
  data: string;
}

export function errorPayload(err: unknown): ErrorPayload {
  const p: ErrorPayload = { code: errorCode(err), message: err instanceof Error ? err.message : String(err) };
  const path = (err as { path?: unknown })?.path;
  if (typeof path === 'string') p.path = path;
  return p;
}

export function errorFromPayload(p: ErrorPayload): GutsError {
  return new GutsError(errorCode({ code: p.code }), p.message, p.path);
}

/** Splits a byte stream into lines without decoding partial UTF-8 sequences. */
export class LineSplitter {
  private parts: Buffer[] = [];
  private size = 0;

  constructor(
    private readonly onLine: (line: string) => void,
    private readonly maxBytes = MAX_LINE_BYTES,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl < 0) break;
      const piece = chunk.subarray(start, nl);
      const line = this.parts.length ? Buffer.concat([...this.parts, piece]) : piece;
      this.parts = [];
      this.size = 0;
      if (line.length) this.onLine(line.toString('utf8'));
      start = nl + 1;
    }
    if (start < chunk.length) {
      this.size += chunk.length - start;
      if (this.size > this.maxBytes) {
        this.parts = [];
        this.size = 0;
        throw new GutsError('GUTS_INVALID_ARGUMENT', `admin request line longer than ${this.maxBytes} bytes`);
      }
      this.parts.push(chunk.subarray(start));
    }
  }
}

/**
 * Runs fn with a path to the socket that fits in sockaddr_un (108 bytes): long
 * paths are reached relative to a temporarily changed cwd. bind(2)/connect(2)
 * happen synchronously inside net's listen()/connect(), so fn must call them
 * directly.
 */
export function withSocketPath<T>(socketPath: string, fn: (p: string) => T): T {
  if (Buffer.byteLength(socketPath) < 100) return fn(socketPath);
  const cwd = process.cwd();
  process.chdir(path.dirname(socketPath));
  try {
    return fn(`./${path.basename(socketPath)}`);
  } finally {
    process.chdir(cwd);
  }
}
