// Real git data in and out of the store (issue 2 §3).
//
// import: every object of a git repository streamed from
//   `git cat-file --batch-all-objects --batch --unordered`, batch-put through an
//   ObjectSink (ids must equal git's), then its refs and symbolic HEAD. Refs go
//   last, so an interrupted import never leaves a ref to a missing object.
// export: a bare repository written next to its final place and renamed in:
//   `git init --bare`, every object of the repository as one pack (v2) that
//   `git index-pack` indexes (re-hashing every object), packed-refs, HEAD.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import * as crypto from 'node:crypto';

import { fsError, GutsError } from './errors';
import { LinkChecker, mustBeCommit, RefEntry, refsProblems } from './git-validate';
import { ObjectType, ObjectTypeName } from './native';
import { ObjectSink } from './node-client';
import { checkRepoName, GitObject, GutsStore } from './store';

const BATCH_OBJECTS = 1000;
const BATCH_BYTES = 8 << 20;

/** Runs git; resolves stdout, or throws naming the command and git's own message. */
export async function git(args: string[], opts: { cwd?: string; allowFail?: boolean; input?: Buffer } = {}): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('git', args, { cwd: opts.cwd, stdio: [opts.input ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout!.on('data', (d: Buffer) => out.push(d));
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', (e) => reject(new GutsError('GUTS_IO', `cannot run git ${args[0]}: ${e.message}`)));
    child.on('close', (code) => {
      const stdout = Buffer.concat(out).toString('utf8');
      if (code !== 0 && !opts.allowFail) {
        reject(new GutsError('GUTS_IO', `git ${args.join(' ')} failed (exit ${code}): ${err.trim().split('\n')[0] || 'no message'}`, opts.cwd));
      } else resolve({ code: code ?? -1, stdout });
    });
    if (opts.input) child.stdin!.end(opts.input);
  });
}

/** Checks that `repoPath` is a SHA-1 git repository (bare or not); returns its git dir. */
export async function checkGitRepo(repoPath: string): Promise<string> {
  if (!fs.existsSync(repoPath)) throw new GutsError('GUTS_NOT_FOUND', `git repository ${repoPath} does not exist`, repoPath);
  const r = await git(['-C', repoPath, 'rev-parse', '--is-bare-repository', '--absolute-git-dir'], { allowFail: true });
  if (r.code !== 0) throw new GutsError('GUTS_INVALID_ARGUMENT', `${repoPath} is not a git repository`, repoPath);
  // The path must be the repository itself, not a directory inside another one.
  const [bare, gitDir] = r.stdout.split('\n');
  const root = bare === 'true' ? gitDir : (await git(['-C', repoPath, 'rev-parse', '--show-toplevel'])).stdout.trim();
  if (root !== fs.realpathSync(repoPath)) {
    throw new GutsError('GUTS_INVALID_ARGUMENT', `${repoPath} is not a git repository (it is inside ${root})`, repoPath);
  }
  const fmt = await git(['-C', repoPath, 'rev-parse', '--show-object-format'], { allowFail: true });
  if (fmt.code === 0 && fmt.stdout.trim() !== 'sha1') {
    throw new GutsError('GUTS_INVALID_ARGUMENT', `${repoPath} uses object format ${fmt.stdout.trim()}; only sha1 repositories can be stored`, repoPath);
  }
  return gitDir;
}

export interface GitObjectWithId extends GitObject {
  id: string;
}

/**
 * Every object of the repository, streamed. Parses the --batch output
 * ("<id> <type> <size>\n<body>\n") chunk by chunk: each body is copied once
 * into its own buffer, whatever its size; git is paused while the consumer awaits.
 */
export async function* readGitObjects(repoPath: string): AsyncGenerator<GitObjectWithId> {
  const child = spawn('git', ['-C', repoPath, 'cat-file', '--batch-all-objects', '--batch', '--unordered'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number>((resolve, reject) => {
    child.on('error', (e) => reject(new GutsError('GUTS_IO', `cannot run git cat-file: ${e.message}`)));
    child.on('close', (code) => resolve(code ?? -1));
  });
  let header = Buffer.alloc(0);
  let body: Buffer | null = null;
  let filled = 0;
  let cur: { id: string; type: ObjectTypeName } | null = null;
  let needNewline = false;
  try {
    for await (const chunk of child.stdout as AsyncIterable<Buffer>) {
      let pos = 0;
      while (pos < chunk.length) {
        if (needNewline) {
          if (chunk[pos] !== 0x0a) throw new GutsError('GUTS_CORRUPT', `git cat-file output out of sync after object ${cur?.id}`, repoPath);
          pos++;
          needNewline = false;
          continue;
        }
        if (body) {
          const n = Math.min(body.length - filled, chunk.length - pos);
          chunk.copy(body, filled, pos, pos + n);
          filled += n;
          pos += n;
          if (filled === body.length) {
            const o: GitObjectWithId = { id: cur!.id, type: cur!.type, data: body };
            body = null;
            needNewline = true;
            yield o;
          }
          continue;
        }
        const nl = chunk.indexOf(0x0a, pos);
        if (nl < 0) {
          header = Buffer.concat([header, chunk.subarray(pos)]);
          break;
        }
        const line = Buffer.concat([header, chunk.subarray(pos, nl)]).toString('latin1');
        header = Buffer.alloc(0);
        pos = nl + 1;
        const m = /^([0-9a-f]{40}) (commit|tree|blob|tag) (\d+)$/.exec(line);
        if (!m) throw new GutsError('GUTS_CORRUPT', `unexpected git cat-file output "${line.slice(0, 80)}"`, repoPath);
        cur = { id: m[1], type: m[2] as ObjectTypeName };
        const size = Number(m[3]);
        body = Buffer.allocUnsafe(size);
        filled = 0;
        if (size === 0) {
          const o: GitObjectWithId = { id: cur.id, type: cur.type, data: body };
          body = null;
          needNewline = true;
          yield o;
        }
      }
    }
  } finally {
    if (child.exitCode === null) child.kill();
  }
  const code = await exited;
  if (code !== 0) throw new GutsError('GUTS_IO', `git cat-file in ${repoPath} failed (exit ${code}): ${stderr.trim().split('\n')[0]}`, repoPath);
  if (body || header.length) throw new GutsError('GUTS_CORRUPT', `git cat-file output truncated in ${repoPath}`, repoPath);
}

export interface GitRefs {
  refs: Array<{ name: string; target: string }>;
  head: { symbolic: string } | { target: string } | null;
}

export async function readGitRefs(repoPath: string): Promise<GitRefs> {
  const r = await git(['-C', repoPath, 'for-each-ref', '--format=%(objectname) %(refname)']);
  const refs: GitRefs['refs'] = [];
  for (const line of r.stdout.split('\n')) {
    if (!line) continue;
    const m = /^([0-9a-f]{40}) (.+)$/.exec(line);
    if (!m) throw new GutsError('GUTS_CORRUPT', `unexpected git for-each-ref output "${line}"`, repoPath);
    refs.push({ name: m[2], target: m[1] });
  }
  const sym = await git(['-C', repoPath, 'symbolic-ref', '-q', 'HEAD'], { allowFail: true });
  let head: GitRefs['head'] = null;
  if (sym.code === 0) head = { symbolic: sym.stdout.trim() };
  else {
    const det = await git(['-C', repoPath, 'rev-parse', '-q', '--verify', 'HEAD'], { allowFail: true });
    if (det.code === 0) head = { target: det.stdout.trim() };
  }
  return { refs, head };
}

export interface ImportResult {
  repo: string;
  objects: number;
  added: number;
  bytes: number;
  counts: Record<ObjectTypeName, number>;
  refs: number;
  head: string | null;
  durationS: number;
}

/** Imports every object and ref of a git repository into `repo` through the sink. */
export async function importGitRepo(
  sink: ObjectSink,
  repoPath: string,
  repo: string,
  onProgress?: (objects: number, bytes: number) => void,
): Promise<ImportResult> {
  const started = process.hrtime.bigint();
  checkRepoName(repo);
  const source = path.resolve(repoPath);
  await checkGitRepo(source);
  const refs = await readGitRefs(source);
  await sink.putRepo(repo, { source, imported_at: new Date().toISOString() });

  const result: ImportResult = {
    repo,
    objects: 0,
    added: 0,
    bytes: 0,
    counts: { commit: 0, tree: 0, blob: 0, tag: 0 },
    refs: 0,
    head: null,
    durationS: 0,
  };
  let batch: GitObjectWithId[] = [];
  let batchBytes = 0;
  let inflight: Promise<void> | null = null;
  const put = async (objs: GitObjectWithId[]) => {
    const r = await sink.putObjects(repo, objs);
    for (let i = 0; i < objs.length; i++) {
      if (r.ids[i] !== objs[i].id) {
        throw new GutsError('GUTS_INTERNAL', `git object ${objs[i].id} (${objs[i].type}) was stored as ${r.ids[i]}: ids differ from git's`, source);
      }
    }
    result.added += r.added;
  };
  // One batch in flight while the next is parsed.
  const flush = async () => {
    if (!batch.length) return;
    const objs = batch;
    batch = [];
    batchBytes = 0;
    if (inflight) await inflight;
    inflight = put(objs);
    inflight.catch(() => undefined); // surfaced by the next await
  };
  for await (const o of readGitObjects(source)) {
    batch.push(o);
    batchBytes += o.data.length;
    result.objects++;
    result.bytes += o.data.length;
    result.counts[o.type]++;
    if (batch.length >= BATCH_OBJECTS || batchBytes >= BATCH_BYTES) {
      await flush();
      onProgress?.(result.objects, result.bytes);
    }
  }
  await flush();
  if (inflight) await inflight;

  const updates: Array<{ name: string; target?: string; symbolic?: string }> = refs.refs.map((r) => ({ name: r.name, target: r.target }));
  if (refs.head) {
    updates.push({ name: 'HEAD', ...refs.head });
    result.head = 'symbolic' in refs.head ? refs.head.symbolic : refs.head.target;
  }
  if (updates.length) await sink.setRefs(repo, updates);
  result.refs = refs.refs.length;
  result.durationS = Number(process.hrtime.bigint() - started) / 1e9;
  return result;
}

/** Pack entry header: type and size as git's varint (4 size bits in the first byte). */
function packEntryHeader(type: number, size: number): Buffer {
  const bytes: number[] = [];
  let b = (type << 4) | (size & 0x0f);
  let rest = Math.floor(size / 16);
  while (rest > 0) {
    bytes.push(b | 0x80);
    b = rest & 0x7f;
    rest = Math.floor(rest / 128);
  }
  bytes.push(b);
  return Buffer.from(bytes);
}

export interface ExportResult {
  repo: string;
  dir: string;
  objects: number;
  refs: number;
  packBytes: number;
  head: string | null;
  durationS: number;
}

function isEmptyDirOrMissing(dir: string): boolean {
  try {
    const st = fs.statSync(dir);
    if (!st.isDirectory()) return false;
    return fs.readdirSync(dir).length === 0;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw fsError(e, 'cannot read', dir);
  }
}

async function checkExportRefs(store: GutsStore, repo: string, refs: RefEntry[]): Promise<void> {
  const fail = (why: string) => {
    throw new GutsError('GUTS_CORRUPT', `cannot export ${repo} from ${store.dataDir}: ${why}`, store.dataDir);
  };
  const problems = refsProblems(refs);
  if (problems.length) fail(problems[0]);
  for (const r of refs) {
    if (!r.target) continue;
    const o = await store.getObject(r.target);
    if (!o) fail(`ref ${r.name} points to missing object ${r.target}`);
    else if (mustBeCommit(r.name) && o.type !== 'commit') fail(`ref ${r.name} points to a ${o.type}, not a commit (${r.target})`);
  }
}

/** Writes the repository as a bare git repository at `dir` (missing or empty). */
export async function exportGitRepo(store: GutsStore, repo: string, dir: string, onProgress?: (objects: number) => void): Promise<ExportResult> {
  const started = process.hrtime.bigint();
  checkRepoName(repo);
  const target = path.resolve(dir);
  if (!isEmptyDirOrMissing(target)) throw new GutsError('GUTS_EXISTS', `export target ${target} exists and is not an empty directory`, target);
  const known = (await store.listRepos()).some((r) => r.name === repo);
  if (!known) throw new GutsError('GUTS_NOT_FOUND', `repository ${repo} is not in the store ${store.dataDir}`, store.dataDir);
  // Refs git cannot use (a symbolic-ref loop, HEAD off refs/heads/, a branch on a
  // non-commit) would make a repository git refuses to open: fail instead.
  const refs = await store.getRefs(repo);
  await checkExportRefs(store, repo, refs);

  // Built beside the target and renamed in: no half-written repository at `dir`.
  const tmp = `${target}.partial-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  try {
    await git(['init', '--bare', '-q', tmp]);
    const packDir = path.join(tmp, 'objects', 'pack');
    const tmpPack = path.join(packDir, `tmp-export-${process.pid}.pack`);
    const fd = fs.openSync(tmpPack, 'w+', 0o644);
    let count = 0;
    let packBytes = 0;
    let trailerHex = '';
    const links = new LinkChecker();
    try {
      const head = Buffer.alloc(12);
      head.write('PACK', 0, 'latin1');
      head.writeUInt32BE(2, 4);
      head.writeUInt32BE(0, 8); // patched below: the count is known only at the end
      const pending: Buffer[] = [head];
      let pendingBytes = head.length;
      const drain = () => {
        const b = Buffer.concat(pending, pendingBytes);
        fs.writeSync(fd, b);
        packBytes += b.length;
        pending.length = 0;
        pendingBytes = 0;
      };
      // small pages: a page of large blobs is held in memory at once
      for await (const o of store.objects(repo, 64)) {
        links.add(o.id, o.type, o.data);
        const h = packEntryHeader(ObjectType[o.type], o.data.length);
        const z = zlib.deflateSync(o.data, { level: 1 });
        pending.push(h, z);
        pendingBytes += h.length + z.length;
        count++;
        if (pendingBytes >= 1 << 20) drain();
        if ((count & 1023) === 0) onProgress?.(count);
      }
      drain();
      // A link to an object the repository lacks (or holds with another type)
      // is a repository git fsck --full reports broken: write none.
      const broken = links.problems();
      for (const r of refs) {
        const type = r.target ? links.typeOf(r.target) : 'commit';
        if (!type) broken.push(`ref ${r.name} points to ${r.target}, which is not in the repository`);
      }
      if (broken.length) {
        throw new GutsError('GUTS_CORRUPT', `cannot export ${repo} from ${store.dataDir}: ${broken[0]}${broken.length > 1 ? ` (and ${broken.length - 1} more)` : ''}`, store.dataDir);
      }
      const c = Buffer.alloc(4);
      c.writeUInt32BE(count, 0);
      fs.writeSync(fd, c, 0, 4, 8);
      // Trailer: SHA-1 of everything before it.
      const sha = crypto.createHash('sha1');
      const buf = Buffer.allocUnsafe(1 << 20);
      for (let off = 0; off < packBytes; ) {
        const n = fs.readSync(fd, buf, 0, Math.min(buf.length, packBytes - off), off);
        if (n <= 0) throw new GutsError('GUTS_IO', `short read of ${tmpPack}`, tmpPack);
        sha.update(buf.subarray(0, n));
        off += n;
      }
      const trailer = sha.digest();
      trailerHex = trailer.toString('hex');
      fs.writeSync(fd, trailer, 0, 20, packBytes);
      packBytes += 20;
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    if (count > 0) {
      // Named by its trailer like git's own packs; index-pack re-hashes every
      // object and writes the .idx beside it.
      const finalPack = path.join(packDir, `pack-${trailerHex}.pack`);
      fs.renameSync(tmpPack, finalPack);
      try {
        await git(['index-pack', finalPack], { cwd: tmp });
      } catch (e) {
        throw new GutsError('GUTS_CORRUPT', `git index-pack rejected the pack of ${repo}: ${(e as Error).message}`, finalPack);
      }
    } else fs.rmSync(tmpPack);

    const lines: string[] = [];
    let headLine: string | null = null;
    let refCount = 0;
    for (const r of [...refs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      if (r.name === 'HEAD') {
        headLine = r.symbolic ? `ref: ${r.symbolic}` : r.target!;
        continue;
      }
      if (!r.name.startsWith('refs/')) continue;
      if (r.symbolic) {
        // symbolic refs other than HEAD are written as loose symbolic refs
        fs.mkdirSync(path.dirname(path.join(tmp, r.name)), { recursive: true });
        fs.writeFileSync(path.join(tmp, r.name), `ref: ${r.symbolic}\n`);
      } else lines.push(`${r.target} ${r.name}`);
      refCount++;
    }
    fs.writeFileSync(path.join(tmp, 'packed-refs'), lines.length ? '# pack-refs with: sorted \n' + lines.join('\n') + '\n' : '');
    // A shallow history (imported from a shallow clone) stays a shallow repository.
    const shallow = links.shallowCommits();
    if (shallow.length) fs.writeFileSync(path.join(tmp, 'shallow'), shallow.join('\n') + '\n');
    if (headLine) fs.writeFileSync(path.join(tmp, 'HEAD'), headLine + '\n');

    if (fs.existsSync(target)) fs.rmdirSync(target);
    fs.renameSync(tmp, target);
    return {
      repo,
      dir: target,
      objects: count,
      refs: refCount,
      packBytes,
      head: headLine,
      durationS: Number(process.hrtime.bigint() - started) / 1e9,
    };
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}
