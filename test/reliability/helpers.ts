// Shared by the reliability suite (test/reliability/*.test.ts): a seeded
// PRNG whose seed every test prints (GUTS_RELIABILITY_SEED reproduces a run),
// real stores and archives made by the CLI, a map of where the bytes of an
// archive belong (tar headers / data / padding, zstd frame parts, gzip member
// parts) and a hash of a directory tree to prove "untouched".
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';

import t from 'tap';

import { cli } from '../fixtures/cli';

/** mulberry32: small, fast, deterministic. */
export function prng(seed: number): { int(n: number): number; pick<T>(a: readonly T[]): T } {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let x = s;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  return { int, pick: (a) => a[int(a.length)] };
}

/** The seed of this run: GUTS_RELIABILITY_SEED or the file's default. */
/** The run's seed (GUTS_RELIABILITY_SEED, else `fallback`), printed so a failing run can be repeated. */
export function runSeed(fallback: number): number {
  const env = Number(process.env.GUTS_RELIABILITY_SEED);
  const seed = Number.isInteger(env) && env > 0 ? env : fallback;
  t.comment(`seed ${seed} (GUTS_RELIABILITY_SEED=${seed} reproduces this run)`);
  return seed;
}

export const FORMATS = ['tar.zst', 'tar.gz', 'tar'] as const;
export type Format = (typeof FORMATS)[number];

/** `guts-node dev seed` into dataDir (throws on failure). */
export function seedStore(dataDir: string, size = '8MiB', seed = 7): void {
  const r = cli(['--data-dir', dataDir, 'dev', 'seed', '--size', size, '--seed', String(seed)]);
  if (r.status !== 0) throw new Error(`dev seed failed: ${r.stderr}`);
}

/** `guts-node backup create` of dataDir into `output` (throws on failure). */
export function createArchive(dataDir: string, output: string, extra: string[] = []): void {
  const r = cli(['--data-dir', dataDir, 'backup', 'create', '--output', output, ...extra]);
  if (r.status !== 0) throw new Error(`backup create ${output} failed: ${r.stderr}`);
}

/** relative path -> "<type> <mode> <sha256 or link>" of every entry under dir. */
export function treeState(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      const p = path.join(dir, r);
      const st = fs.lstatSync(p);
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isDirectory()) {
        out[r] = `dir ${mode}`;
        walk(r);
      } else if (st.isFile()) {
        out[r] = `file ${mode} ${crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex')}`;
      } else if (st.isSymbolicLink()) {
        out[r] = `link ${fs.readlinkSync(p)}`;
      } else {
        out[r] = `other ${st.mode.toString(8)}`;
      }
    }
  };
  walk('');
  return out;
}

/** Every path (files, dirs, links) under dir, relative. */
export function allPaths(dir: string): string[] {
  return Object.keys(treeState(dir)).sort();
}

/** Names in dir that look like restore staging dirs. */
export function stagingLeft(dir: string): string[] {
  return fs.readdirSync(dir).filter((n) => /\.restore-\d+\.staging$|^\.guts-restore-/.test(n));
}

export function checkpointsLeft(dataDir: string): string[] {
  try {
    return fs.readdirSync(path.join(dataDir, 'checkpoints'));
  } catch {
    return [];
  }
}

// ---- where the bytes of an archive belong ----

export interface Region {
  start: number;
  end: number;
  /** e.g. "tar header", "tar data", "tar padding", "zstd window descriptor", "gzip mtime" */
  what: string;
  /** the entry name or frame number, for messages */
  of: string;
}

/** Regions of a plain tar stream (ustar / pax / GNU), from the headers. */
export function tarRegions(tar: Buffer, base = 0): Region[] {
  const out: Region[] = [];
  let off = 0;
  while (off + 512 <= tar.length) {
    const h = tar.subarray(off, off + 512);
    if (h.every((b) => b === 0)) {
      out.push({ start: base + off, end: base + tar.length, what: 'tar end-of-archive', of: 'trailer' });
      break;
    }
    const name = h.subarray(0, 100).toString('latin1').replace(/\0.*$/s, '');
    const size = parseInt(h.subarray(124, 136).toString('latin1').replace(/\0.*$/s, '').trim() || '0', 8);
    const padded = Math.ceil(size / 512) * 512;
    out.push({ start: base + off, end: base + off + 512, what: 'tar header', of: name });
    if (size) out.push({ start: base + off + 512, end: base + off + 512 + size, what: 'tar data', of: name });
    if (padded > size) out.push({ start: base + off + 512 + size, end: base + off + 512 + padded, what: 'tar padding', of: name });
    off += 512 + padded;
  }
  return out;
}

/** Regions of a zstd file: every frame's magic, header fields, block headers, block data and checksum. */
export function zstdRegions(buf: Buffer): Region[] {
  const out: Region[] = [];
  let off = 0;
  for (let frame = 0; off < buf.length; frame++) {
    const of = `frame ${frame}`;
    const magic = buf.readUInt32LE(off);
    if ((magic & 0xfffffff0) === 0x184d2a50) {
      const len = buf.readUInt32LE(off + 4);
      out.push({ start: off, end: off + 8 + len, what: 'zstd skippable frame', of });
      off += 8 + len;
      continue;
    }
    if (magic !== 0xfd2fb528) throw new Error(`no zstd frame at ${off}`);
    out.push({ start: off, end: off + 4, what: 'zstd magic', of });
    const fhd = buf[off + 4];
    out.push({ start: off + 4, end: off + 5, what: 'zstd frame header descriptor', of });
    let p = off + 5;
    const single = (fhd >> 5) & 1;
    if (!single) out.push({ start: p, end: ++p, what: 'zstd window descriptor', of });
    const did = [0, 1, 2, 4][fhd & 3];
    if (did) out.push({ start: p, end: (p += did), what: 'zstd dictionary id', of });
    const fcs = [single ? 1 : 0, 2, 4, 8][fhd >> 6];
    if (fcs) out.push({ start: p, end: (p += fcs), what: 'zstd content size', of });
    for (;;) {
      const h = buf[p] | (buf[p + 1] << 8) | (buf[p + 2] << 16);
      const last = h & 1;
      const type = (h >> 1) & 3;
      const size = h >>> 3;
      out.push({ start: p, end: p + 3, what: 'zstd block header', of });
      p += 3;
      const len = type === 1 ? 1 : size;
      if (len) out.push({ start: p, end: p + len, what: 'zstd block data', of });
      p += len;
      if (last) break;
    }
    if ((fhd >> 2) & 1) out.push({ start: p, end: (p += 4), what: 'zstd checksum', of });
    off = p;
  }
  return out;
}

/** Regions of a gzip file of one or more members (no FEXTRA/FNAME/FCOMMENT, as ours). */
export function gzipRegions(buf: Buffer): Region[] {
  const out: Region[] = [];
  let off = 0;
  for (let m = 0; off < buf.length; m++) {
    const of = `member ${m}`;
    if (buf[off] !== 0x1f || buf[off + 1] !== 0x8b || buf[off + 3] !== 0) throw new Error(`unexpected gzip header at ${off}`);
    out.push({ start: off, end: off + 3, what: 'gzip magic and method', of });
    out.push({ start: off + 3, end: off + 4, what: 'gzip flags', of });
    out.push({ start: off + 4, end: off + 8, what: 'gzip mtime', of });
    out.push({ start: off + 8, end: off + 9, what: 'gzip extra flags', of });
    out.push({ start: off + 9, end: off + 10, what: 'gzip os', of });
    const { engine } = zlib.inflateRawSync(buf.subarray(off + 10), { info: true }) as unknown as { engine: { bytesWritten: number } };
    const end = off + 10 + engine.bytesWritten;
    out.push({ start: off + 10, end: end - 1, what: 'deflate data', of });
    out.push({ start: end - 1, end, what: 'deflate last byte', of });
    out.push({ start: end, end: end + 4, what: 'gzip crc32', of });
    out.push({ start: end + 4, end: end + 8, what: 'gzip size', of });
    off = end + 8;
  }
  return out;
}

export function archiveRegions(file: string): Region[] {
  const buf = fs.readFileSync(file);
  if (file.endsWith('.tar.zst')) return zstdRegions(buf);
  if (file.endsWith('.tar.gz')) return gzipRegions(buf);
  return tarRegions(buf);
}

export function regionAt(regions: Region[], off: number): Region {
  const r = regions.find((x) => off >= x.start && off < x.end);
  if (!r) throw new Error(`offset ${off} is in no region`);
  return r;
}

/** Bytes that no content check covers (only the SHA-256 sidecar does): see flips.test.ts. */
export const UNPROTECTED = new Set([
  'tar padding', // plain .tar: zeros after each file's data up to 512 bytes; the reader skips them
  'zstd window descriptor', // a larger (or still sufficient) window decodes the same bytes; the frame checksum still matches
  'gzip flags', // FTEXT is a hint only
  'gzip mtime',
  'gzip extra flags',
  'gzip os',
  'deflate last byte', // the unused bits after the final block's end code
]);
