// Helpers for WAL archiving tests: a node configured for archiving, and the
// archive read back segment by segment (every checksum, the chain, continuity).
import * as fs from 'node:fs';
import * as path from 'node:path';

import { checkChain, decodeSegment, parseSegmentName, Segment, WalRecord } from '../../src/wal/segment';

export function walConfig(dir: string, wal: Record<string, string>): string {
  const file = path.join(dir, 'config.yaml');
  fs.writeFileSync(file, 'wal:\n' + Object.entries(wal).map(([k, v]) => `  ${k}: ${JSON.stringify(v)}\n`).join(''));
  return file;
}

export interface ArchiveContents {
  segments: Segment[];
  records: WalRecord[];
  names: string[];
}

/** Decodes every segment of one timeline in order and checks the chain between each pair. Throws on any break. */
export async function readArchive(dir: string, timeline = 1): Promise<ArchiveContents> {
  const names = fs
    .readdirSync(dir)
    .filter((n) => parseSegmentName(n)?.timeline === timeline)
    .sort();
  const segments: Segment[] = [];
  for (const name of names) {
    const seg = await decodeSegment(fs.readFileSync(path.join(dir, name)), name);
    if (segments.length) checkChain(segments[segments.length - 1], seg, name);
    segments.push(seg);
  }
  return { segments, names, records: segments.flatMap((s) => s.records) };
}

/** How often `needle` occurs in the archived batches of the db store. */
export function occurrences(records: WalRecord[], needle: Buffer): number {
  let n = 0;
  for (const r of records) {
    if (r.db !== 'db') continue;
    for (let i = r.data.indexOf(needle); i >= 0; i = r.data.indexOf(needle, i + 1)) n++;
  }
  return n;
}
