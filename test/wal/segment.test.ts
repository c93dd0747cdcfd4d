// Segment format: round trip, every header field, any flipped byte, names.
import t from 'tap';

import {
  checkChain,
  decodeHistory,
  decodeSegment,
  encodeHistory,
  encodeSegment,
  historyName,
  parseHistoryName,
  parseSegmentName,
  readSegmentHeader,
  SEGMENT_HEADER_BYTES,
  segmentName,
  WalRecord,
  ZERO_CHECKSUM,
} from '../../src/wal/segment';

/** A syntactically valid WriteBatch rep: fixed64 seq, fixed32 count, then opaque bytes. */
function batch(seq: number, count: number, body = 'x'): Buffer {
  const b = Buffer.alloc(12);
  b.writeBigUInt64LE(BigInt(seq), 0);
  b.writeUInt32LE(count, 8);
  return Buffer.concat([b, Buffer.from(body)]);
}

function rec(db: 'db' | 'consensus', seq: number, count: number, timeUs: number, mark?: string): WalRecord {
  const r: WalRecord = { db, seq, count, timeUs, data: batch(seq, count, `${db}-${seq}`.repeat(20)) };
  if (mark !== undefined) r.mark = mark;
  return r;
}

const records = [rec('db', 10, 3, 1_700_000_000_000_001), rec('consensus', 5, 2, 1_700_000_000_000_002), rec('db', 13, 1, 1_700_000_000_000_003, 'before-migration'), rec('db', 14, 4, 1_700_000_000_000_009)];

t.test('round trip keeps every header field and record', async (t) => {
  const prev = 'ab'.repeat(32);
  const { file, header, checksum } = await encodeSegment({ timeline: 7, segment: 42, dbFirstSeq: 10, consensusFirstSeq: 5, prevChecksum: prev, records });
  const name = segmentName(7, 42);
  t.equal(name, '00000007-000000000000002a.gwal');
  const seg = await decodeSegment(file, name);
  t.equal(seg.timeline, 7);
  t.equal(seg.segment, 42);
  t.same(seg.db, { first: 10, last: 17 });
  t.same(seg.consensus, { first: 5, last: 6 });
  t.equal(seg.firstTimeUs, 1_700_000_000_000_001);
  t.equal(seg.lastTimeUs, 1_700_000_000_000_009);
  t.equal(seg.recordCount, 4);
  t.equal(seg.prevChecksum, prev);
  t.equal(seg.checksum, checksum);
  t.same({ ...header }, { timeline: 7, segment: 42, db: seg.db, consensus: seg.consensus, firstTimeUs: seg.firstTimeUs, lastTimeUs: seg.lastTimeUs, recordCount: 4, prevChecksum: prev });
  t.equal(seg.records.length, 4);
  seg.records.forEach((r, i) => {
    t.equal(r.db, records[i].db);
    t.equal(r.seq, records[i].seq);
    t.equal(r.count, records[i].count);
    t.equal(r.timeUs, records[i].timeUs);
    t.equal(r.mark, records[i].mark);
    t.ok(r.data.equals(records[i].data), `record ${i} data`);
  });
  t.equal(file.subarray(file.length - 32).toString('hex'), checksum, 'trailer is the checksum');
  const h = readSegmentHeader(file, name);
  t.equal(h.checksum, checksum);
});

t.test('a segment with no batch of one store keeps its range empty', async (t) => {
  const { file } = await encodeSegment({ timeline: 1, segment: 1, dbFirstSeq: 1, consensusFirstSeq: 9, prevChecksum: ZERO_CHECKSUM, records: [rec('db', 1, 2, 5)] });
  const seg = await decodeSegment(file);
  t.same(seg.consensus, { first: 9, last: 8 });
  t.same(seg.db, { first: 1, last: 2 });
});

t.test('a flipped byte anywhere is GUTS_CORRUPT', async (t) => {
  const { file } = await encodeSegment({ timeline: 1, segment: 3, dbFirstSeq: 10, consensusFirstSeq: 5, prevChecksum: ZERO_CHECKSUM, records });
  let rejected = 0;
  for (let i = 0; i < file.length; i++) {
    const bad = Buffer.from(file);
    bad[i] ^= 1 << i % 8;
    await t.rejects(decodeSegment(bad), { code: 'GUTS_CORRUPT' }, `byte ${i}`).then(() => rejected++);
  }
  t.equal(rejected, file.length, `all ${file.length} single-bit flips rejected`);
  for (const cut of [0, 10, SEGMENT_HEADER_BYTES, file.length - 1]) await t.rejects(decodeSegment(file.subarray(0, cut)), { code: 'GUTS_CORRUPT' }, `cut at ${cut}`);
  await t.rejects(decodeSegment(Buffer.concat([file, Buffer.from([0])])), { code: 'GUTS_CORRUPT' }, 'trailing byte');
});

t.test('a wrong name is GUTS_CORRUPT', async (t) => {
  const { file } = await encodeSegment({ timeline: 2, segment: 8, dbFirstSeq: 10, consensusFirstSeq: 5, prevChecksum: ZERO_CHECKSUM, records });
  await t.resolves(decodeSegment(file, segmentName(2, 8)));
  for (const name of [segmentName(2, 9), segmentName(3, 8), 'garbage.gwal', '00000002-0000000000000008.log', '00000002-0000000000000008'])
    await t.rejects(decodeSegment(file, name), { code: 'GUTS_CORRUPT' }, name);
});

t.test('names sort in replay order and parse back', async (t) => {
  const names = [segmentName(1, 255), segmentName(1, 16), segmentName(2, 1), segmentName(1, 2 ** 40)];
  t.same([...names].sort(), [segmentName(1, 16), segmentName(1, 255), segmentName(1, 2 ** 40), segmentName(2, 1)]);
  t.same(parseSegmentName(segmentName(0xffffffff, Number.MAX_SAFE_INTEGER)), { timeline: 0xffffffff, segment: Number.MAX_SAFE_INTEGER });
  t.equal(parseSegmentName('00000001-00000000000000FF.gwal'), null, 'upper-case hex is not a name we write');
  t.equal(historyName(3), '00000003.history');
  t.equal(parseHistoryName('00000003.history'), 3);
  t.throws(() => segmentName(-1, 1), { code: 'GUTS_INVALID_ARGUMENT' });
});

t.test('encode refuses records out of sequence', async (t) => {
  await t.rejects(encodeSegment({ timeline: 1, segment: 1, dbFirstSeq: 11, consensusFirstSeq: 5, prevChecksum: ZERO_CHECKSUM, records }), { code: 'GUTS_INTERNAL' });
});

t.test('chain: consecutive numbers, prev checksum, continuous sequences', async (t) => {
  const a = await encodeSegment({ timeline: 1, segment: 1, dbFirstSeq: 10, consensusFirstSeq: 5, prevChecksum: ZERO_CHECKSUM, records });
  const sa = await decodeSegment(a.file);
  const b = await encodeSegment({ timeline: 1, segment: 2, dbFirstSeq: 18, consensusFirstSeq: 7, prevChecksum: a.checksum, records: [rec('db', 18, 1, 20)] });
  const sb = await decodeSegment(b.file);
  t.doesNotThrow(() => checkChain(sa, sb));
  t.throws(() => checkChain(sa, { ...sb, prevChecksum: ZERO_CHECKSUM }), { code: 'GUTS_CORRUPT' });
  t.throws(() => checkChain(sa, { ...sb, segment: 3 }), { code: 'GUTS_CORRUPT' });
  t.throws(() => checkChain(sa, { ...sb, db: { first: 19, last: 19 } }), { code: 'GUTS_CORRUPT' });
});

t.test('history files round trip and are checked', async (t) => {
  const h = { timeline: 2, parent_timeline: 1, branch: { segment: 9, db_seq: 100, consensus_seq: 7, prev_checksum: ZERO_CHECKSUM }, reason: 'gap' as const, created: new Date(0).toISOString() };
  const back = decodeHistory(encodeHistory(h), historyName(2));
  t.same(back, { format: 'guts-wal-history', format_version: 1, ...h });
  t.throws(() => decodeHistory(encodeHistory(h), historyName(3)), { code: 'GUTS_CORRUPT' });
  t.throws(() => decodeHistory(Buffer.from('{"format":"guts-wal-history"}')), { code: 'GUTS_CORRUPT' });
  t.throws(() => decodeHistory(Buffer.from('not json')), { code: 'GUTS_CORRUPT' });
});
