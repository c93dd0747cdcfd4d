// `guts-node dev seed`: a deterministic generator of realistic node data for
// tests, the demo and benchmarks. The same (seed, size, repos) always gives
// the same objects, ids, refs and blocks.
//
// Per repository: a commit chain on refs/heads/main (each commit rewrites a
// few files and sometimes adds one), real trees (root, src/, src/lib/, docs/,
// assets/) in git's entry format and order, an annotated tag and a second
// branch, HEAD symbolic, repository metadata. Text blobs are source-like and
// compressible (slices of a generated corpus under a unique header line);
// binary blobs are incompressible (an AES-128-CTR keystream of the seed).
// Sizes are mostly small with a tail up to 4 MiB. Consensus blocks with a
// finalized height go to consensus/. Everything passes `git fsck --full`
// after export.
import * as crypto from 'node:crypto';

import { GutsError } from './errors';
import { native, ObjectType, ObjectTypeName } from './native';
import { ObjectSink } from './node-client';
import { GitObject } from './store';

// ---------------------------------------------------------------- sizes

const UNITS: Record<string, number> = {
  '': 1, b: 1,
  k: 1e3, kb: 1e3, kib: 1024,
  m: 1e6, mb: 1e6, mib: 1024 ** 2,
  g: 1e9, gb: 1e9, gib: 1024 ** 3,
  t: 1e12, tb: 1e12, tib: 1024 ** 4,
};

/** "64MiB", "1GiB", "500MB", "1.5G", "4096" -> bytes. */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = m ? UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new GutsError('GUTS_INVALID_ARGUMENT', `invalid size "${text}" (examples: 64MiB, 1GiB, 500MB)`);
  return Math.round(Number(m[1]) * unit);
}

// ---------------------------------------------------------------- randomness

/** sfc32: small, fast, good enough for choices (not for bulk bytes). */
class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  constructor(seed: Buffer) {
    this.a = seed.readUInt32LE(0);
    this.b = seed.readUInt32LE(4);
    this.c = seed.readUInt32LE(8);
    this.d = seed.readUInt32LE(12);
    for (let i = 0; i < 16; i++) this.next();
  }
  next(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }
  /** [0, 1) */
  float(): number {
    return this.next() / 4294967296;
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.float() * (hi - lo + 1));
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.float() * xs.length)];
  }
  /** log-uniform integer in [lo, hi]: many small, some large */
  logInt(lo: number, hi: number): number {
    return Math.min(hi, Math.floor(lo * Math.pow(hi / lo, this.float())));
  }
}

/** Incompressible bytes: AES-128-CTR keystream (AES-NI: GB/s, deterministic). */
class Keystream {
  private cipher: crypto.Cipher;
  private static zeros = Buffer.alloc(1 << 20);
  constructor(key: Buffer) {
    this.cipher = crypto.createCipheriv('aes-128-ctr', key.subarray(0, 16), Buffer.alloc(16));
  }
  bytes(n: number): Buffer {
    if (n <= Keystream.zeros.length) return this.cipher.update(Keystream.zeros.subarray(0, n));
    const parts: Buffer[] = [];
    for (let left = n; left > 0; left -= Keystream.zeros.length) parts.push(this.cipher.update(Keystream.zeros.subarray(0, Math.min(left, Keystream.zeros.length))));
    return Buffer.concat(parts, n);
  }
}

// ---------------------------------------------------------------- text corpus

const WORDS = [
  'user', 'repo', 'object', 'tree', 'commit', 'index', 'count', 'buffer', 'stream', 'store', 'node', 'hash', 'ref', 'block',
  'value', 'key', 'data', 'result', 'error', 'config', 'path', 'entry', 'batch', 'cache', 'state', 'peer', 'height', 'item',
  'list', 'map', 'name', 'size', 'offset', 'limit', 'reader', 'writer', 'handle', 'options', 'context', 'request', 'response',
];
const TYPES = ['string', 'number', 'boolean', 'Buffer', 'Promise<void>', 'Map<string, number>', 'Uint8Array', 'Record<string, unknown>'];
const OPS = ['<', '>', '===', '!==', '<=', '>='];
const NAMES = [
  ['Ada Lovelace', 'ada'], ['Grace Hopper', 'grace'], ['Linus Torvalds', 'linus'], ['Margaret Hamilton', 'margaret'],
  ['Ken Thompson', 'ken'], ['Barbara Liskov', 'barbara'], ['Dennis Ritchie', 'dmr'], ['Frances Allen', 'fran'],
] as const;
const OWNERS = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan', 'judy'];
const PROJECTS = ['api', 'web', 'cli', 'core', 'docs', 'infra', 'sdk', 'tools', 'engine', 'bridge', 'relay', 'vault'];
const VERBS = ['Fix', 'Add', 'Refactor', 'Update', 'Improve', 'Remove', 'Document', 'Speed up', 'Simplify', 'Test'];

const cap = (w: string) => w[0].toUpperCase() + w.slice(1);

function makeCorpus(rng: Rng, bytes: number): Buffer {
  const lines: string[] = [];
  let total = 0;
  let depth = 0;
  while (total < bytes) {
    const ind = '  '.repeat(depth);
    const a = rng.pick(WORDS);
    const b = rng.pick(WORDS);
    let line: string;
    const r = rng.float();
    if (depth === 0 && r < 0.15) {
      line = `export function ${a}${cap(b)}(${b}: ${rng.pick(TYPES)}, ${a}: ${rng.pick(TYPES)}): ${rng.pick(TYPES)} {`;
      depth = 1;
    } else if (r < 0.3) {
      line = `${ind}const ${a}${rng.int(0, 99)} = ${b}.${rng.pick(WORDS)}(${rng.pick(WORDS)}, ${rng.int(0, 4096)});`;
    } else if (r < 0.42 && depth < 4) {
      line = `${ind}if (${a}.${b} ${rng.pick(OPS)} ${rng.int(0, 1000)}) {`;
      depth++;
    } else if (r < 0.55 && depth > 0) {
      depth--;
      line = `${'  '.repeat(depth)}}`;
    } else if (r < 0.68) {
      line = `${ind}// ${cap(rng.pick(WORDS))} the ${a} before the ${b} is ${rng.pick(['written', 'read', 'flushed', 'hashed', 'checked'])}.`;
    } else if (r < 0.8) {
      line = `${ind}for (const ${a} of ${b}s) ${rng.pick(WORDS)}.push(${a});`;
    } else if (r < 0.9) {
      line = `${ind}return ${a}${cap(b)} ?? ${rng.int(0, 255)};`;
    } else {
      line = `${ind}await this.${a}.${b}(${JSON.stringify(rng.pick(WORDS) + '/' + rng.pick(WORDS))});`;
    }
    lines.push(line);
    total += line.length + 1;
  }
  return Buffer.from(lines.join('\n') + '\n', 'utf8');
}

// ---------------------------------------------------------------- git objects

interface FileEntry {
  id: Buffer;
  mode: '100644' | '100755';
  rev: number;
}

function hash(type: ObjectTypeName, body: Buffer): Buffer {
  return native.gitHash(ObjectType[type], body);
}

/**
 * One directory's entries, kept in git's tree order (by name, directories
 * compared as "name/"), each with its "<mode> <name>\0" header encoded once;
 * a tree body is then one allocation and a copy per entry.
 */
class TreeDir {
  private entries = new Map<string, { key: string; header: Buffer; id: Buffer }>();
  private order: Array<{ key: string; header: Buffer; id: Buffer }> | null = null;

  set(name: string, mode: string, id: Buffer, dir: boolean): void {
    const e = this.entries.get(name);
    if (e) {
      e.id = id;
      return;
    }
    this.entries.set(name, { key: dir ? name + '/' : name, header: Buffer.from(`${mode} ${name}\0`, 'utf8'), id });
    this.order = null;
  }

  get size(): number {
    return this.entries.size;
  }

  body(): Buffer {
    if (!this.order) this.order = [...this.entries.values()].sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
    let n = 0;
    for (const e of this.order) n += e.header.length + 20;
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    for (const e of this.order) {
      off += e.header.copy(out, off);
      off += e.id.copy(out, off);
    }
    return out;
  }
}

const DIRS = ['', 'src', 'src/lib', 'docs', 'assets'] as const;
const DEEPEST_FIRST = [...DIRS].sort((a, b) => b.split('/').length - a.split('/').length || b.length - a.length);

function dirOf(p: string): string {
  const i = p.lastIndexOf('/');
  return i < 0 ? '' : p.slice(0, i);
}

// ---------------------------------------------------------------- generator

export interface SeedOptions {
  /** target bytes of object bodies (blobs, trees, commits, tags) */
  size: number;
  repos?: number;
  seed?: string;
  /** consensus blocks (default: 10 per repository, at least 100) */
  blocks?: number;
  onProgress?: (bytes: number) => void;
}

export interface SeedResult {
  seed: string;
  bytes: number;
  objects: number;
  counts: Record<ObjectTypeName, number>;
  added: number;
  repositories: number;
  repos: string[];
  commits: number;
  blocks: number;
  finalizedHeight: number;
  durationS: number;
  mbPerS: number;
}

export function defaultRepoCount(size: number): number {
  return Math.max(1, Math.min(100, Math.floor(size / (8 << 20))));
}

const BATCH_OBJECTS = 2000;
const BATCH_BYTES = 8 << 20;
const MAX_INFLIGHT = 3;

export async function seedData(sink: ObjectSink, opts: SeedOptions): Promise<SeedResult> {
  const started = process.hrtime.bigint();
  const seed = opts.seed ?? '1';
  const repoCount = opts.repos ?? defaultRepoCount(opts.size);
  if (!Number.isInteger(repoCount) || repoCount < 1) throw new GutsError('GUTS_INVALID_ARGUMENT', `repository count must be a positive integer`);
  if (!(opts.size > 0)) throw new GutsError('GUTS_INVALID_ARGUMENT', 'size must be positive');
  const master = crypto.createHash('sha256').update(`guts-seed:${seed}`).digest();
  const rng = new Rng(master);
  const keystream = new Keystream(crypto.createHash('sha256').update(master).update('keystream').digest());
  const corpus = makeCorpus(rng, 1 << 20);

  const result: SeedResult = {
    seed,
    bytes: 0,
    objects: 0,
    counts: { commit: 0, tree: 0, blob: 0, tag: 0 },
    added: 0,
    repositories: repoCount,
    repos: [],
    commits: 0,
    blocks: 0,
    finalizedHeight: 0,
    durationS: 0,
    mbPerS: 0,
  };

  // Batches go out with up to MAX_INFLIGHT puts in flight while the next is
  // generated: the store hashes outside its write lock, so two puts overlap.
  const inflight: Array<Promise<void>> = [];
  const drain = async (keep: number) => {
    while (inflight.length > keep) await inflight.shift();
  };
  let batch: Array<GitObject & { id: Buffer }> = [];
  let batchBytes = 0;
  let batchRepo = '';
  const put = async (repo: string, objs: Array<GitObject & { id: Buffer }>) => {
    const r = await sink.putObjects(repo, objs);
    for (let i = 0; i < objs.length; i++) {
      if (r.ids[i] !== objs[i].id.toString('hex')) throw new GutsError('GUTS_INTERNAL', `seed object ${objs[i].id.toString('hex')} stored as ${r.ids[i]}`);
    }
    result.added += r.added;
  };
  const flush = async () => {
    if (!batch.length) return;
    const objs = batch;
    const repo = batchRepo;
    batch = [];
    batchBytes = 0;
    await drain(MAX_INFLIGHT - 1);
    const p = put(repo, objs);
    p.catch(() => undefined); // surfaced when drained
    inflight.push(p);
    opts.onProgress?.(result.bytes);
  };
  const emit = async (repo: string, type: ObjectTypeName, data: Buffer): Promise<Buffer> => {
    const id = hash(type, data);
    if (repo !== batchRepo) {
      await flush();
      batchRepo = repo;
    }
    batch.push({ type, data, id });
    batchBytes += data.length;
    result.objects++;
    result.counts[type]++;
    result.bytes += data.length;
    if (batch.length >= BATCH_OBJECTS || batchBytes >= BATCH_BYTES) await flush();
    return id;
  };

  const textBlob = (repo: string, p: string, rev: number, size: number): Buffer => {
    const head = Buffer.from(`// ${p} in ${repo}, revision ${rev} (seed ${seed})\n`, 'utf8');
    const want = Math.max(0, size - head.length);
    const parts: Buffer[] = [head];
    let left = want;
    // start at a line boundary of the corpus
    let off = corpus.indexOf(0x0a, rng.int(0, corpus.length - 1)) + 1;
    while (left > 0) {
      if (off <= 0 || off >= corpus.length) off = 0;
      const n = Math.min(left, corpus.length - off);
      parts.push(corpus.subarray(off, off + n));
      left -= n;
      off += n;
    }
    return Buffer.concat(parts, head.length + want);
  };

  const baseTime = 1_700_000_000 + (master.readUInt32LE(16) % 10_000_000);
  const budgetPer = Math.floor(opts.size / repoCount);
  const usedNames = new Set<string>();

  for (let ri = 0; ri < repoCount; ri++) {
    const budget = ri === repoCount - 1 ? opts.size - result.bytes : budgetPer;
    const startBytes = result.bytes;
    let name = `${OWNERS[ri % OWNERS.length]}/${rng.pick(PROJECTS)}-${ri}`;
    while (usedNames.has(name)) name += 'x';
    usedNames.add(name);
    result.repos.push(name);
    const [authorName, authorMail] = rng.pick(NAMES);
    await sink.putRepo(name, {
      description: `${cap(rng.pick(WORDS))} ${rng.pick(WORDS)} service (seeded)`,
      default_branch: 'main',
      visibility: 'public',
      created_at: new Date((baseTime + ri * 86400) * 1000).toISOString(),
      seed,
    });

    // Large files never exceed an eighth of the repository's budget.
    const maxBinary = Math.max(1024, Math.min(4 << 20, Math.floor(budget / 8)));
    const maxText = Math.max(512, Math.min(512 << 10, Math.floor(budget / 8)));
    const textSize = () => {
      const r = rng.float();
      const hi = r < 0.7 ? 8 << 10 : r < 0.95 ? 64 << 10 : 512 << 10;
      return rng.logInt(200, Math.min(hi, maxText));
    };
    const binarySize = () => {
      const r = rng.float();
      const hi = r < 0.6 ? 64 << 10 : r < 0.9 ? 512 << 10 : 4 << 20;
      return rng.logInt(1024, Math.min(hi, maxBinary));
    };

    const files = new Map<string, FileEntry>();
    const dirs = new Map<string, TreeDir>(DIRS.map((d) => [d, new TreeDir()]));
    const writeFile = async (p: string, rev: number) => {
      const binary = p.startsWith('assets/');
      const data = binary ? keystream.bytes(binarySize()) : textBlob(name, p, rev, textSize());
      const id = await emit(name, 'blob', data);
      const mode = p.endsWith('.sh') ? '100755' : '100644';
      files.set(p, { id, mode, rev });
      const dir = dirOf(p);
      dirs.get(dir)!.set(p.slice(dir ? dir.length + 1 : 0), mode, id, false);
    };
    const newPath = (dir: string): string => {
      for (;;) {
        const base = `${rng.pick(WORDS)}_${rng.pick(WORDS)}${rng.int(0, 999)}`;
        const p =
          dir === 'assets'
            ? `assets/${base}.${rng.pick(['png', 'bin', 'woff2', 'jpg'])}`
            : dir === 'docs'
              ? `docs/${base}.md`
              : `${dir}/${base}.ts`;
        if (!files.has(p)) return p;
      }
    };

    // Initial commit's files.
    const initial: string[] = ['README.md', 'package.json', '.gitignore', 'build.sh'];
    for (let i = rng.int(6, 16); i > 0; i--) initial.push(newPath('src'));
    for (let i = rng.int(3, 8); i > 0; i--) initial.push(newPath('src/lib'));
    for (let i = rng.int(1, 4); i > 0; i--) initial.push(newPath('docs'));
    for (let i = rng.int(1, 3); i > 0; i--) initial.push(newPath('assets'));
    for (const p of initial) await writeFile(p, 0);

    const treeIds = new Map<string, Buffer>();
    const buildTrees = async (dirty: Set<string>): Promise<Buffer> => {
      // deepest first, so parents see their children's new ids
      for (const dir of DEEPEST_FIRST) {
        if (!dirty.has(dir)) continue;
        const tree = dirs.get(dir)!;
        if (!tree.size) continue;
        const id = await emit(name, 'tree', tree.body());
        treeIds.set(dir, id);
        if (dir) dirs.get(dirOf(dir))!.set(dir.slice(dirOf(dir) ? dirOf(dir).length + 1 : 0), '40000', id, true);
      }
      return treeIds.get('')!;
    };
    const ancestors = (p: string, into: Set<string>) => {
      let d = dirOf(p);
      for (;;) {
        into.add(d);
        if (!d) return;
        d = dirOf(d);
      }
    };

    let parent: Buffer | null = null;
    let commitNo = 0;
    const commitIds: Buffer[] = [];
    let changed = new Set<string>(initial);
    let message = 'Initial commit';
    for (;;) {
      const dirty = new Set<string>();
      for (const p of changed) ancestors(p, dirty);
      const tree = await buildTrees(dirty);
      const ts = baseTime + ri * 86400 + commitNo * 3607;
      const [cn, cm] = commitNo % 5 === 4 ? rng.pick(NAMES) : [authorName, authorMail];
      const body =
        `tree ${tree.toString('hex')}\n` +
        (parent ? `parent ${parent.toString('hex')}\n` : '') +
        `author ${cn} <${cm}@example.com> ${ts} +0000\n` +
        `committer ${authorName} <${authorMail}@example.com> ${ts + 60} +0000\n\n` +
        `${message}\n`;
      parent = await emit(name, 'commit', Buffer.from(body, 'utf8'));
      commitIds.push(parent);
      commitNo++;
      result.commits++;
      if (result.bytes - startBytes >= budget) break;

      // Next commit: rewrite 1-3 files, sometimes add one.
      changed = new Set<string>();
      const paths = [...files.keys()];
      for (let i = rng.int(1, 3); i > 0; i--) {
        const r = rng.float();
        const pool = r < 0.12 ? paths.filter((p) => p.startsWith('assets/')) : paths.filter((p) => !p.startsWith('assets/'));
        const p = rng.pick(pool.length ? pool : paths);
        changed.add(p);
      }
      if (rng.float() < 0.1) changed.add(newPath(rng.pick(['src', 'src/lib', 'docs'])));
      for (const p of changed) await writeFile(p, (files.get(p)?.rev ?? -1) + 1);
      const first = [...changed][0];
      message = `${rng.pick(VERBS)} ${rng.pick(WORDS)} ${rng.pick(WORDS)} in ${first}`;
    }

    // An annotated tag at the middle of the chain, a second branch behind main.
    const tagged = commitIds[Math.floor((commitIds.length - 1) / 2)];
    const tagBody =
      `object ${tagged.toString('hex')}\ntype commit\ntag v0.1.0\n` +
      `tagger ${authorName} <${authorMail}@example.com> ${baseTime + ri * 86400 + 30} +0000\n\nRelease 0.1.0\n`;
    const tagId = await emit(name, 'tag', Buffer.from(tagBody, 'utf8'));
    await flush();
    await drain(0); // refs only after their objects are stored
    await sink.setRefs(name, [
      { name: 'refs/heads/main', target: parent!.toString('hex') },
      { name: 'refs/heads/develop', target: commitIds[Math.max(0, commitIds.length - 2)].toString('hex') },
      { name: 'refs/tags/v0.1.0', target: tagId.toString('hex') },
      { name: 'HEAD', symbolic: 'refs/heads/main' },
    ]);
  }
  await flush();
  await drain(0);

  // Consensus: blocks chained by hash, finalized two behind the tip.
  const blockCount = opts.blocks ?? Math.max(100, repoCount * 10);
  let prev = Buffer.alloc(32);
  let pending: Array<{ height: number; data: Buffer }> = [];
  for (let h = 1; h <= blockCount; h++) {
    const header = Buffer.from(
      JSON.stringify({ height: h, parent: prev.toString('hex'), timestamp: baseTime + h * 2, proposer: rng.pick(OWNERS), repo: result.repos[h % result.repos.length] }) + '\n',
    );
    const data = Buffer.concat([header, keystream.bytes(rng.int(128, 2048))]);
    prev = crypto.createHash('sha256').update(data).digest();
    pending.push({ height: h, data });
    if (pending.length === 500 || h === blockCount) {
      const last = h === blockCount;
      await sink.putBlocks(pending, last ? Math.max(0, blockCount - 2) : -1);
      pending = [];
    }
  }
  result.blocks = blockCount;
  result.finalizedHeight = Math.max(0, blockCount - 2);
  result.durationS = Number(process.hrtime.bigint() - started) / 1e9;
  result.mbPerS = result.bytes / 1e6 / result.durationS;
  return result;
}
