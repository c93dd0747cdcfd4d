// Reading the WAL archive in replay order, for point-in-time restore and
// `wal verify`. Segment names are predictable (timeline + number), so several
// are fetched and decoded ahead at once. Every segment is checked on its own
// (decodeSegment: checksum, records, name vs header) and against the one
// before it (the hash chain and each store's sequence continuity; at a
// timeline switch, against the branch point of the child's history). The end
// of the archive is the first name that is not found, once a few names beyond
// it are found missing too: a later segment present behind a missing one is a
// gap, never an end.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { GutsError } from '../errors';
import { native } from '../native';
import { checkChain, decodeSegment, parseSegmentName, Segment, segmentName, WalRecord } from './segment';
import { WalSource } from './target';
import { TimelineStep, WalPosition } from './timeline';

export interface WalkOptions {
  source: WalSource;
  /** private dir the fetched files land in (each is read and removed at once) */
  tmpDir: string;
  steps: TimelineStep[];
  /** the base: its first segment and last sequences (batches at or below them are already in the store) */
  base: WalPosition;
  /** segments fetched and decoded ahead (default 4) */
  prefetch?: number;
  /** names probed past the first missing one to tell the end from a gap (default 3) */
  probeAhead?: number;
}

export interface WalkedSegment {
  name: string;
  segment: Segment;
  /** archived bytes of the segment */
  bytes: number;
  /** the segment's records newer than the base and on the path, in commit order */
  records: WalRecord[];
}

interface Position {
  step: number;
  segment: number;
}

/** badBatch: the first record restore could not apply (checked ahead on a worker, reported in order by check()) */
type Fetched = { name: string; bytes: number; segment: Segment; badBatch: { index: number; why: string } | null } | null;

function gap(message: string, name?: string): GutsError {
  return new GutsError('GUTS_WAL_GAP', message, name);
}

export class ArchiveWalker {
  private readonly prefetch: number;
  private readonly probeAhead: number;
  private pos: Position;
  private readonly inflight = new Map<string, Promise<Fetched>>();
  private prev: Segment | null = null;
  private done = false;
  /** the first name not found, where the archive ended (after next() returned null) */
  endName: string | null = null;
  segments = 0;
  bytes = 0;
  /** archived batches the base already holds (skipped): their latest commit time and restore points */
  readonly inBase = { lastTimeUs: 0, marks: new Set<string>() };
  private fetches = 0;

  constructor(private readonly opts: WalkOptions) {
    this.prefetch = Math.max(1, opts.prefetch ?? 4);
    this.probeAhead = opts.probeAhead ?? 3;
    this.pos = { step: 0, segment: opts.base.segment };
    while (this.pos.step < opts.steps.length - 1 && this.pos.segment >= opts.steps[this.pos.step].endSegment) this.pos.step++;
    fs.mkdirSync(opts.tmpDir, { recursive: true, mode: 0o700 });
  }

  /** the last segment returned by next() */
  get last(): Segment | null {
    return this.prev;
  }

  private nameAt(p: Position): string {
    return segmentName(this.opts.steps[p.step].timeline, p.segment);
  }

  private advance(p: Position): Position {
    const s = p.segment + 1;
    return s >= this.opts.steps[p.step].endSegment ? { step: p.step + 1, segment: s } : { step: p.step, segment: s };
  }

  private fetch(name: string): Promise<Fetched> {
    let f = this.inflight.get(name);
    if (!f) {
      const dest = path.join(this.opts.tmpDir, `${name}.${++this.fetches}`);
      f = (async () => {
        if (!(await this.opts.source.fetch(name, dest))) return null;
        let buf: Buffer;
        try {
          buf = await fs.promises.readFile(dest);
        } finally {
          await fs.promises.rm(dest, { force: true });
        }
        const segment = await decodeSegment(buf, name);
        // checksums prove the bytes are the archived ones, not that restore can apply them: parse every batch
        const badBatch = await native.walCheckBatches(
          Uint8Array.from(segment.records, (r) => (r.db === 'db' ? 0 : 1)),
          segment.records.map((r) => r.data),
        );
        return { name, bytes: buf.length, segment, badBatch };
      })();
      f.catch(() => undefined); // surfaced when consumed
      this.inflight.set(name, f);
    }
    return f;
  }

  /** Starts fetches for the next `prefetch` names from the current position. */
  private fill(): void {
    let p = this.pos;
    for (let i = 0; i < this.prefetch && p.step < this.opts.steps.length; i++) {
      this.fetch(this.nameAt(p));
      p = this.advance(p);
    }
  }

  /** The next segment in replay order, checked; null at the end of the archive. */
  async next(): Promise<WalkedSegment | null> {
    if (this.done || this.pos.step >= this.opts.steps.length) return null;
    this.fill();
    const name = this.nameAt(this.pos);
    const got = await this.inflight.get(name)!;
    this.inflight.delete(name);
    const step = this.opts.steps[this.pos.step];
    if (!got) {
      if (step.endSegment !== Infinity) {
        throw gap(`WAL segment ${name} is missing from ${this.opts.source.describe}: timeline ${step.timeline} must continue to segment ${step.endSegment - 1}, where timeline ${step.child!.timeline} branched off`, name);
      }
      await this.checkEnd(name);
      this.done = true;
      this.endName = name;
      return null;
    }
    const seg = got.segment;
    const records = this.check(seg, name, got.badBatch);
    this.prev = seg;
    this.segments++;
    this.bytes += got.bytes;
    this.pos = this.advance(this.pos);
    return { name, segment: seg, bytes: got.bytes, records };
  }

  /** Chain and continuity; returns the records to replay. */
  private check(seg: Segment, name: string, badBatch: { index: number; why: string } | null): WalRecord[] {
    const { base } = this.opts;
    const step = this.opts.steps[this.pos.step];
    const prev = this.prev;
    if (!prev) {
      // the archive must reach back to the base's sequences
      if (seg.db.first > base.db_seq + 1 || seg.consensus.first > base.consensus_seq + 1) {
        throw gap(
          `WAL segment ${name} starts at db sequence ${seg.db.first} / consensus ${seg.consensus.first}, but the base backup ends at ${base.db_seq} / ${base.consensus_seq}: the batches in between are not archived`,
          name,
        );
      }
    } else if (prev.timeline !== seg.timeline) {
      // a timeline switch: the child's first segment continues the parent's branch point
      const parentStep = this.opts.steps[this.pos.step - 1];
      const h = parentStep.child!;
      if (seg.prevChecksum !== prev.checksum || h.branch.prev_checksum !== prev.checksum) {
        throw gap(`WAL segment ${name} (timeline ${seg.timeline}) does not chain to segment ${segmentName(prev.timeline, prev.segment)} where its history branches off`, name);
      }
      if (seg.db.first !== h.branch.db_seq + 1 || seg.consensus.first !== h.branch.consensus_seq + 1) {
        throw gap(`WAL segment ${name} starts at db sequence ${seg.db.first} / consensus ${seg.consensus.first}, its timeline branched at ${h.branch.db_seq} / ${h.branch.consensus_seq}`, name);
      }
    } else {
      try {
        checkChain(prev, seg, name);
      } catch (e) {
        throw gap(`${(e as Error).message} (segment ${segmentName(prev.timeline, prev.segment)} before it)`, name);
      }
    }
    if (badBatch) {
      const r = seg.records[badBatch.index];
      throw new GutsError('GUTS_CORRUPT', `WAL segment ${name}: ${r.db} batch at sequence ${r.seq} cannot be applied: ${badBatch.why}`, name);
    }
    const stop = step.stop;
    const out: WalRecord[] = [];
    for (const r of seg.records) {
      const baseSeq = r.db === 'db' ? base.db_seq : base.consensus_seq;
      const last = r.seq + r.count - 1;
      if (last <= baseSeq) {
        // already in the base
        this.inBase.lastTimeUs = Math.max(this.inBase.lastTimeUs, r.timeUs);
        if (r.mark !== undefined) this.inBase.marks.add(r.mark);
        continue;
      }
      if (r.seq <= baseSeq) throw new GutsError('GUTS_CORRUPT', `WAL segment ${name}: ${r.db} batch ${r.seq}..${last} straddles the base backup's sequence ${baseSeq}`, name);
      if (stop && r.seq > (r.db === 'db' ? stop.db : stop.consensus)) continue; // after the branch point: another history
      out.push(r);
    }
    return out;
  }

  /** A missing name on the last timeline: the end, unless something later is archived. */
  private async checkEnd(missing: string): Promise<void> {
    let p = this.pos;
    for (let i = 0; i < this.probeAhead; i++) {
      p = this.advance(p);
      if (p.step >= this.opts.steps.length) break;
      const later = this.nameAt(p);
      // present = fetched, whether it decodes or not
      const found = await this.fetch(later).then(
        (f) => f !== null,
        () => true,
      );
      if (found) throw gap(`WAL segment ${missing} is missing from ${this.opts.source.describe}, but ${later} is archived after it`, missing);
    }
    if (this.opts.source.list) {
      const tl = this.opts.steps[this.pos.step].timeline;
      const later = (await this.opts.source.list()).map((n) => ({ n, p: parseSegmentName(n) })).find((x) => x.p && x.p.timeline === tl && x.p.segment > this.pos.segment);
      if (later) throw gap(`WAL segment ${missing} is missing from ${this.opts.source.describe}, but ${later.n} is archived after it`, missing);
    }
  }

  /** Waits for fetches still running (their files are removed). */
  async close(): Promise<void> {
    this.done = true;
    await Promise.allSettled([...this.inflight.values()]);
    this.inflight.clear();
  }
}
