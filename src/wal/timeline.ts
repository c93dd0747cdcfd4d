// Timelines: every point-in-time restore starts a new history so that the
// restored store's segments never overwrite the ones it came from. A timeline
// > 1 has a history file (`<timeline>.history`, src/wal/segment.ts) naming
// its parent and the branch point: the parent's last sequences it contains,
// the first segment number it writes and that segment's prevChecksum. A
// restore follows a path of timelines from the base's one to the chosen one:
// segments of each ancestor up to its branch point, then the child's.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { GutsError } from '../errors';
import { decodeHistory, historyName, parseHistoryName, parseSegmentName, segmentName, TimelineHistory } from './segment';
import { WalSource } from './target';

/** Where a base backup sits in the WAL history (MANIFEST.json `wal`). */
export interface WalPosition {
  timeline: number;
  /** first segment that may hold batches newer than the base */
  segment: number;
  db_seq: number;
  consensus_seq: number;
}

/** One timeline of a restore path: its segments from the current number up to endSegment (exclusive). */
export interface TimelineStep {
  timeline: number;
  /** the first segment of the next step's timeline (Infinity on the last step) */
  endSegment: number;
  /** the last sequences of this timeline that belong to the path (absent on the last step) */
  stop?: { db: number; consensus: number };
  /** the next timeline's history (absent on the last step) */
  child?: TimelineHistory;
}

/** Histories read from an archive, cached per timeline (null = none archived). */
export class HistoryReader {
  private readonly cache = new Map<number, TimelineHistory | null>();
  constructor(
    private readonly source: WalSource,
    private readonly tmpDir: string,
  ) {}

  async get(timeline: number): Promise<TimelineHistory | null> {
    if (this.cache.has(timeline)) return this.cache.get(timeline)!;
    const name = historyName(timeline);
    const dest = path.join(this.tmpDir, name);
    let h: TimelineHistory | null = null;
    if (await this.source.fetch(name, dest)) {
      try {
        h = decodeHistory(fs.readFileSync(dest), name);
      } finally {
        fs.rmSync(dest, { force: true });
      }
      if (h.parent_timeline >= timeline) throw new GutsError('GUTS_CORRUPT', `history file ${name}: parent timeline ${h.parent_timeline} is not older than ${timeline}`);
    }
    this.cache.set(timeline, h);
    return h;
  }

  /** Timelines with a history file above `from`: consecutive ids, plus any the location lists. */
  async descendantsCandidates(from: number): Promise<number[]> {
    const found: number[] = [];
    let tl = from + 1;
    while (await this.get(tl)) found.push(tl++);
    for (const tl of await this.listedTimelines()) if (tl > from && !found.includes(tl) && (await this.get(tl))) found.push(tl);
    return found.sort((a, b) => a - b);
  }

  /** Every timeline id the location can list (segments and histories); empty when it cannot list. */
  async listedTimelines(): Promise<number[]> {
    if (!this.source.list) return [];
    const ids = new Set<number>();
    for (const name of await this.source.list()) {
      const tl = parseSegmentName(name)?.timeline ?? parseHistoryName(name);
      if (tl !== null && tl !== undefined) ids.add(tl);
    }
    return [...ids];
  }

  /** The next unused timeline id: above every archived history (probed) and every listed name. */
  async nextTimeline(atLeast: number): Promise<number> {
    let tl = Math.max(2, atLeast);
    for (const listed of await this.listedTimelines()) tl = Math.max(tl, listed + 1);
    while (await this.get(tl)) tl++;
    return tl;
  }

  /**
   * The path from the base's timeline to `timeline`: each ancestor up to its
   * branch point. Null when `timeline` does not descend from the base's
   * timeline after the base (a branch taken before the base was made).
   */
  async pathFrom(base: WalPosition, timeline: number): Promise<TimelineStep[] | null> {
    const chain: TimelineHistory[] = [];
    let tl = timeline;
    while (tl !== base.timeline) {
      const h = await this.get(tl);
      if (!h) return null;
      chain.unshift(h);
      tl = h.parent_timeline;
      if (tl < base.timeline) return null;
    }
    const steps: TimelineStep[] = [];
    let current = base.timeline;
    for (const h of chain) {
      steps.push({ timeline: current, endSegment: h.branch.segment, stop: { db: h.branch.db_seq, consensus: h.branch.consensus_seq }, child: h });
      current = h.timeline;
    }
    steps.push({ timeline: current, endSegment: Infinity });
    const first = steps[0];
    if (first.stop && (first.stop.db < base.db_seq || first.stop.consensus < base.consensus_seq || first.endSegment < base.segment)) return null;
    return steps;
  }

  /**
   * `latest`: the highest timeline descending from the base whose first
   * segment is archived (a history whose timeline never archived a segment,
   * e.g. a test restore that was never started, is passed over); else the
   * base's own timeline. An explicit timeline must descend from the base.
   */
  async resolvePath(base: WalPosition, wanted: number | 'latest', exists: (name: string) => Promise<boolean>): Promise<TimelineStep[]> {
    if (wanted !== 'latest') {
      const p = await this.pathFrom(base, wanted);
      if (!p) {
        throw new GutsError(
          'GUTS_INVALID_ARGUMENT',
          `timeline ${wanted} does not continue the base backup's history (timeline ${base.timeline} at db sequence ${base.db_seq}): no ${historyName(wanted)} leading back to it after the base`,
        );
      }
      return p;
    }
    const candidates = await this.descendantsCandidates(base.timeline);
    for (const tl of candidates.reverse()) {
      const p = await this.pathFrom(base, tl);
      if (!p) continue;
      const h = p[p.length - 2].child!;
      if (await exists(segmentName(tl, h.branch.segment))) return p;
    }
    return [{ timeline: base.timeline, endSegment: Infinity }];
  }
}
