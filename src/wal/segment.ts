// WAL archive segments (docs/FORMAT.md "WAL segments"): self-describing,
// checkable on their own, hash-chained. Shared by the node's archiver and the
// restore side (PITR); the byte layout here is the contract between them.
import * as crypto from 'node:crypto';

import { GutsError } from '../errors';
import { native, WalDbName } from '../native';

export const SEGMENT_MAGIC = Buffer.from('GUTS-WAL', 'latin1');
export const SEGMENT_FORMAT_VERSION = 1;
export const SEGMENT_HEADER_BYTES = 128;
export const SEGMENT_TRAILER_BYTES = 32;
export const RECORD_HEADER_BYTES = 28;
/** a decoded payload is never trusted beyond this (segment_size is at most 1 GiB) */
export const MAX_SEGMENT_RAW_BYTES = 2 ** 30 + 64 * 2 ** 20;
export const ZERO_CHECKSUM = '0'.repeat(64);

const DB_CODES: Record<WalDbName, number> = { db: 0, consensus: 1 };
const DB_NAMES: WalDbName[] = ['db', 'consensus'];

/** One committed write batch of one store. */
export interface WalRecord {
  db: WalDbName;
  seq: number;
  count: number;
  /** commit wall time, microseconds since the epoch (0: none recorded) */
  timeUs: number;
  /** name of a `wal mark` restore point */
  mark?: string;
  /** RocksDB WriteBatch representation (fixed64 seq, fixed32 count, records) */
  data: Buffer;
}

/** Sequence range a segment covers for one store: last = first - 1 when it holds none of its batches. */
export interface SeqRange {
  first: number;
  last: number;
}

export interface SegmentHeader {
  timeline: number;
  segment: number;
  db: SeqRange;
  consensus: SeqRange;
  /** commit time of the first / last record (µs); 0 when the segment has no record */
  firstTimeUs: number;
  lastTimeUs: number;
  recordCount: number;
  /** checksum (hex) of the previous segment of this history; ZERO_CHECKSUM at the start of a chain */
  prevChecksum: string;
}

export interface Segment extends SegmentHeader {
  /** SHA-256 (hex) of header + payload: the trailer, and the next segment's prevChecksum */
  checksum: string;
  rawBytes: number;
  records: WalRecord[];
}

// ---- names ----

const SEGMENT_NAME = /^([0-9a-f]{8})-([0-9a-f]{16})\.gwal$/;
const HISTORY_NAME = /^([0-9a-f]{8})\.history$/;

/** `<timeline, 8 hex>-<segment number, 16 hex>.gwal`: sorts in replay order within a timeline. */
export function segmentName(timeline: number, segment: number): string {
  checkUint('timeline', timeline, 0xffffffff);
  checkUint('segment', segment, Number.MAX_SAFE_INTEGER);
  return `${timeline.toString(16).padStart(8, '0')}-${segment.toString(16).padStart(16, '0')}.gwal`;
}

export function parseSegmentName(name: string): { timeline: number; segment: number } | null {
  const m = SEGMENT_NAME.exec(name);
  if (!m) return null;
  return { timeline: parseInt(m[1], 16), segment: parseInt(m[2], 16) };
}

/** `<timeline, 8 hex>.history`: where a timeline branched off its parent. */
export function historyName(timeline: number): string {
  checkUint('timeline', timeline, 0xffffffff);
  return `${timeline.toString(16).padStart(8, '0')}.history`;
}

export function parseHistoryName(name: string): number | null {
  const m = HISTORY_NAME.exec(name);
  return m ? parseInt(m[1], 16) : null;
}

function checkUint(what: string, v: number, max: number): void {
  if (!Number.isSafeInteger(v) || v < 0 || v > max) throw new GutsError('GUTS_INVALID_ARGUMENT', `${what} ${v} out of range`);
}

// ---- history files ----

export interface TimelineHistory {
  format: 'guts-wal-history';
  format_version: 1;
  timeline: number;
  parent_timeline: number;
  /** the parent's last sequences this timeline contains, the first segment number it writes, and that segment's prevChecksum */
  branch: { segment: number; db_seq: number; consensus_seq: number; prev_checksum: string };
  reason: 'gap' | 'restore';
  created: string;
}

export function encodeHistory(h: Omit<TimelineHistory, 'format' | 'format_version'>): Buffer {
  return Buffer.from(JSON.stringify({ format: 'guts-wal-history', format_version: 1, ...h }, null, 2) + '\n');
}

export function decodeHistory(buf: Buffer, name?: string): TimelineHistory {
  let h: TimelineHistory;
  try {
    h = JSON.parse(buf.toString('utf8')) as TimelineHistory;
  } catch {
    throw new GutsError('GUTS_CORRUPT', `history file ${name ?? ''} is not JSON`.replace('  ', ' '));
  }
  const ok =
    h?.format === 'guts-wal-history' &&
    h.format_version === 1 &&
    Number.isSafeInteger(h.timeline) &&
    Number.isSafeInteger(h.parent_timeline) &&
    Number.isSafeInteger(h.branch?.segment) &&
    Number.isSafeInteger(h.branch?.db_seq) &&
    Number.isSafeInteger(h.branch?.consensus_seq) &&
    /^[0-9a-f]{64}$/.test(h.branch?.prev_checksum ?? '');
  if (!ok) throw new GutsError('GUTS_CORRUPT', `history file ${name ?? ''} has missing or invalid fields`.replace('  ', ' '));
  if (name !== undefined && parseHistoryName(name) !== h.timeline) throw new GutsError('GUTS_CORRUPT', `history file ${name} describes timeline ${h.timeline}`);
  return h;
}

// ---- encode ----

export interface EncodeSegmentInput {
  timeline: number;
  segment: number;
  /** first sequence each store's part of the segment starts at (previous segment's last + 1) */
  dbFirstSeq: number;
  consensusFirstSeq: number;
  prevChecksum: string;
  /** in commit order per store; both stores' records may interleave */
  records: WalRecord[];
  /** zstd level (default 3) */
  level?: number;
}

/** Encodes, compresses (on a worker thread) and seals a segment. Checks the records' continuity first. */
export async function encodeSegment(input: EncodeSegmentInput): Promise<{ file: Buffer; header: SegmentHeader; checksum: string }> {
  const ranges = {
    db: { first: input.dbFirstSeq, last: input.dbFirstSeq - 1 },
    consensus: { first: input.consensusFirstSeq, last: input.consensusFirstSeq - 1 },
  };
  const parts: Buffer[] = [];
  for (const r of input.records) {
    const range = ranges[r.db];
    if (r.seq !== range.last + 1) throw new GutsError('GUTS_INTERNAL', `segment ${input.segment}: ${r.db} batch at ${r.seq} does not follow ${range.last}`);
    range.last = r.seq + r.count - 1;
    const mark = Buffer.from(r.mark ?? '', 'utf8');
    const h = Buffer.alloc(RECORD_HEADER_BYTES);
    h.writeUInt8(DB_CODES[r.db], 0);
    h.writeUInt8(r.mark !== undefined ? 1 : 0, 1);
    h.writeUInt16LE(mark.length, 2);
    h.writeUInt32LE(r.count, 4);
    h.writeBigUInt64LE(BigInt(r.seq), 8);
    h.writeBigUInt64LE(BigInt(r.timeUs), 16);
    h.writeUInt32LE(r.data.length, 24);
    parts.push(h, mark, r.data);
  }
  const raw = Buffer.concat(parts);
  const payload = await native.walCompress(raw, input.level ?? 3);
  const header: SegmentHeader = {
    timeline: input.timeline,
    segment: input.segment,
    db: ranges.db,
    consensus: ranges.consensus,
    firstTimeUs: input.records.length ? input.records[0].timeUs : 0,
    lastTimeUs: input.records.length ? input.records[input.records.length - 1].timeUs : 0,
    recordCount: input.records.length,
    prevChecksum: input.prevChecksum,
  };
  const head = writeHeader(header, raw.length, payload.length);
  const checksum = crypto.createHash('sha256').update(head).update(payload).digest();
  return { file: Buffer.concat([head, payload, checksum]), header, checksum: checksum.toString('hex') };
}

function writeHeader(h: SegmentHeader, rawBytes: number, payloadBytes: number): Buffer {
  if (!/^[0-9a-f]{64}$/.test(h.prevChecksum)) throw new GutsError('GUTS_INVALID_ARGUMENT', 'prevChecksum must be 64 lower-case hex digits');
  checkUint('timeline', h.timeline, 0xffffffff);
  const b = Buffer.alloc(SEGMENT_HEADER_BYTES);
  SEGMENT_MAGIC.copy(b, 0);
  b.writeUInt16LE(SEGMENT_FORMAT_VERSION, 8);
  b.writeUInt16LE(SEGMENT_HEADER_BYTES, 10);
  b.writeUInt32LE(h.timeline, 12);
  const u64 = (v: number, off: number) => b.writeBigUInt64LE(BigInt(v), off);
  u64(h.segment, 16);
  u64(h.db.first, 24);
  u64(h.db.last, 32);
  u64(h.consensus.first, 40);
  u64(h.consensus.last, 48);
  u64(h.firstTimeUs, 56);
  u64(h.lastTimeUs, 64);
  b.writeUInt32LE(h.recordCount, 72);
  b.writeUInt32LE(0, 76); // flags
  u64(rawBytes, 80);
  u64(payloadBytes, 88);
  Buffer.from(h.prevChecksum, 'hex').copy(b, 96);
  return b;
}

// ---- decode / verify ----

function corrupt(what: string, why: string): GutsError {
  return new GutsError('GUTS_CORRUPT', `${what}: ${why}`);
}

function u64(b: Buffer, off: number, what: string): number {
  const v = b.readBigUInt64LE(off);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(what, `64-bit field at offset ${off} out of range`);
  return Number(v);
}

/**
 * Header and checksum only (no decompression): what `wal status`, resume and
 * listing need. Throws GUTS_CORRUPT when anything fails; `name` (the file
 * name) must then match the header's timeline and segment number.
 */
export function readSegmentHeader(file: Buffer, name?: string): SegmentHeader & { checksum: string; rawBytes: number } {
  const what = `segment ${name ?? ''}`.trimEnd();
  if (file.length < SEGMENT_HEADER_BYTES + SEGMENT_TRAILER_BYTES) throw corrupt(what, `${file.length} bytes is shorter than a segment`);
  if (!file.subarray(0, 8).equals(SEGMENT_MAGIC)) throw corrupt(what, 'bad magic (not a guts WAL segment)');
  const version = file.readUInt16LE(8);
  if (version !== SEGMENT_FORMAT_VERSION) throw corrupt(what, `format version ${version} (this build reads ${SEGMENT_FORMAT_VERSION})`);
  if (file.readUInt16LE(10) !== SEGMENT_HEADER_BYTES) throw corrupt(what, `header size ${file.readUInt16LE(10)}`);
  const payloadBytes = u64(file, 88, what);
  if (file.length !== SEGMENT_HEADER_BYTES + payloadBytes + SEGMENT_TRAILER_BYTES) throw corrupt(what, `size ${file.length} does not match its header (payload ${payloadBytes})`);
  const end = file.length - SEGMENT_TRAILER_BYTES;
  const checksum = crypto.createHash('sha256').update(file.subarray(0, end)).digest();
  if (!checksum.equals(file.subarray(end))) throw corrupt(what, 'checksum mismatch');
  const h: SegmentHeader & { checksum: string; rawBytes: number } = {
    timeline: file.readUInt32LE(12),
    segment: u64(file, 16, what),
    db: { first: u64(file, 24, what), last: u64(file, 32, what) },
    consensus: { first: u64(file, 40, what), last: u64(file, 48, what) },
    firstTimeUs: u64(file, 56, what),
    lastTimeUs: u64(file, 64, what),
    recordCount: file.readUInt32LE(72),
    prevChecksum: file.subarray(96, 128).toString('hex'),
    checksum: checksum.toString('hex'),
    rawBytes: u64(file, 80, what),
  };
  if (file.readUInt32LE(76) !== 0) throw corrupt(what, 'unknown flags');
  if (h.rawBytes > MAX_SEGMENT_RAW_BYTES) throw corrupt(what, `payload of ${h.rawBytes} bytes is too large`);
  for (const db of DB_NAMES) if (h[db].first < 1 || h[db].last < h[db].first - 1) throw corrupt(what, `${db} sequence range ${h[db].first}..${h[db].last}`);
  if (name !== undefined) {
    const n = parseSegmentName(name);
    if (!n) throw corrupt(what, 'not a segment file name (<timeline>-<segment>.gwal)');
    if (n.timeline !== h.timeline || n.segment !== h.segment) throw corrupt(what, `holds timeline ${h.timeline} segment ${h.segment}, not what its name says`);
  }
  return h;
}

/** Full check: header, checksum, payload, every record and its sequence continuity. GUTS_CORRUPT on any failure. */
export async function decodeSegment(file: Buffer, name?: string): Promise<Segment> {
  const h = readSegmentHeader(file, name);
  const what = `segment ${name ?? segmentName(h.timeline, h.segment)}`;
  const payload = file.subarray(SEGMENT_HEADER_BYTES, file.length - SEGMENT_TRAILER_BYTES);
  let raw: Buffer;
  try {
    raw = await native.walDecompress(payload, h.rawBytes);
  } catch (e) {
    throw corrupt(what, (e as Error).message);
  }
  if (raw.length !== h.rawBytes) throw corrupt(what, `payload is ${raw.length} bytes, header says ${h.rawBytes}`);
  const records: WalRecord[] = [];
  const next = { db: h.db.first, consensus: h.consensus.first };
  let off = 0;
  while (off < raw.length) {
    if (raw.length - off < RECORD_HEADER_BYTES) throw corrupt(what, `record ${records.length} cut short`);
    const code = raw.readUInt8(off);
    const flags = raw.readUInt8(off + 1);
    const markLen = raw.readUInt16LE(off + 2);
    const count = raw.readUInt32LE(off + 4);
    const seq = u64(raw, off + 8, what);
    const timeUs = u64(raw, off + 16, what);
    const dataLen = raw.readUInt32LE(off + 24);
    off += RECORD_HEADER_BYTES;
    const db = DB_NAMES[code];
    if (!db || flags > 1 || (flags === 0 && markLen !== 0) || count === 0) throw corrupt(what, `record ${records.length} has an invalid header`);
    if (raw.length - off < markLen + dataLen) throw corrupt(what, `record ${records.length} cut short`);
    const mark = flags ? raw.subarray(off, off + markLen).toString('utf8') : undefined;
    off += markLen;
    const data = raw.subarray(off, off + dataLen);
    off += dataLen;
    if (dataLen < 12 || Number(data.readBigUInt64LE(0)) !== seq || data.readUInt32LE(8) !== count) throw corrupt(what, `record ${records.length} does not match its batch header`);
    if (seq !== next[db]) throw corrupt(what, `${db} batch at sequence ${seq}, expected ${next[db]}`);
    next[db] = seq + count;
    records.push(mark === undefined ? { db, seq, count, timeUs, data } : { db, seq, count, timeUs, mark, data });
  }
  if (records.length !== h.recordCount) throw corrupt(what, `${records.length} records, header says ${h.recordCount}`);
  for (const db of DB_NAMES) if (next[db] !== h[db].last + 1) throw corrupt(what, `${db} batches end at ${next[db] - 1}, header says ${h[db].last}`);
  const first = records.length ? records[0].timeUs : 0;
  const last = records.length ? records[records.length - 1].timeUs : 0;
  if (first !== h.firstTimeUs || last !== h.lastTimeUs) throw corrupt(what, 'commit times do not match the header');
  return { ...h, records };
}

/** The chain rule between two consecutive segments of one history. */
export function checkChain(prev: Pick<Segment, 'checksum' | 'db' | 'consensus' | 'segment'>, next: SegmentHeader, nextName = segmentName(next.timeline, next.segment)): void {
  if (next.segment !== prev.segment + 1) throw corrupt(`segment ${nextName}`, `follows segment ${prev.segment}`);
  if (next.prevChecksum !== prev.checksum) throw corrupt(`segment ${nextName}`, 'does not chain to the previous segment (prev checksum differs)');
  for (const db of DB_NAMES) if (next[db].first !== prev[db].last + 1) throw corrupt(`segment ${nextName}`, `${db} starts at ${next[db].first}, previous ended at ${prev[db].last}`);
}
