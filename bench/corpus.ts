// The real-files corpus: git repositories with history built from real files
// found on this machine (C headers, the Python standard library, RocksDB's and
// zstd's C++ sources, TypeScript's libraries, Debian's docs …), imported into
// a guts data dir with `guts-node import`. The seeded data set compresses like
// random bytes (snappy keeps 72%); real source trees are text and compress
// three times better, so tuning that is only checked on seeded data goes
// wrong (issue 14). Every suite runs on both.
//
// Built once per machine and cached (GUTS_CORPUS_DIR, default
// ~/.cache/guts-store/corpus-v<VERSION>-<MB>); a run copies the cached data dir so
// the cache stays pristine.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { CLI, ROOT } from './lib';

export interface CorpusSource {
  name: string;
  dir: string;
  /** add files a .gitignore of the tree ignores (Debian's kernel tree ignores its whole top level) */
  force?: boolean;
}

export interface Corpus {
  dataDir: string;
  /** bare-enough git repositories the data dir was imported from (for git fsck comparisons) */
  repos: string[];
  /** bytes of the real files taken (before git) */
  fileBytes: number;
  files: number;
  commits: number;
}

// 2: the cached data dir is imported with the store format of issue 14 (LZ4 above, ZSTD at the bottommost level)
// 3: new stores size their levels dynamically, and the data dir is settled after the imports (below)
const VERSION = 3;
/** files larger than this are left out (a git host's objects are mostly small) */
const MAX_FILE = 4 << 20;
/** commits that add the files, then rounds that edit some of them */
const ADD_COMMITS = 6;
const EDIT_ROUNDS = 3;

/**
 * Where real files live on a Debian machine with Node; only those present are used.
 * A corpus over 1000 MB also takes the Linux kernel's source tree (Debian's
 * linux-source-6.x package, 1.3 GB of C, headers and docs): this machine's
 * other text runs out at ~405 MB, and issue 14 measured on 2 GB of objects
 * from real third-party trees. It comes last so the smaller sources keep
 * the shares they have in the 300 and 1000 MB corpora.
 */
export function realSources(maxBytes = 0, log: (s: string) => void = () => {}): CorpusSource[] {
  const nm = path.join(ROOT, 'node_modules');
  const candidates: CorpusSource[] = [
    { name: 'rocksdb', dir: path.join(nm, 'rocksdb', 'deps', 'rocksdb', 'rocksdb') },
    { name: 'zstd', dir: path.join(nm, 'zstd-napi', 'deps', 'zstd') },
    { name: 'c-headers', dir: '/usr/include' },
    { name: 'python-stdlib', dir: firstExisting(['/usr/lib/python3.13', '/usr/lib/python3.12', '/usr/lib/python3.11', '/usr/lib/python3']) },
    { name: 'typescript', dir: path.join(nm, 'typescript', 'lib') },
    { name: 'perl', dir: '/usr/share/perl' },
    { name: 'debian-docs', dir: '/usr/share/doc' },
    { name: 'node-modules', dir: nm },
  ];
  if (maxBytes > 1e9) {
    const linux = linuxSourceTree(log);
    if (linux) candidates.push({ name: 'linux', dir: linux, force: true });
  }
  return candidates.filter((c) => c.dir && fs.existsSync(c.dir));
}

/**
 * The kernel tree unpacked once from /usr/src/linux-source-*.tar.xz into the
 * cache (a few hundred MB of xz: ~1 minute); undefined, with a note, when
 * the package is not installed.
 */
function linuxSourceTree(log: (s: string) => void): string | undefined {
  let tarball: string | undefined;
  try {
    tarball = fs
      .readdirSync('/usr/src')
      .filter((f) => /^linux-source-[\d.]+\.tar\.xz$/.test(f))
      .sort()
      .pop();
  } catch {
    tarball = undefined;
  }
  if (!tarball) {
    log('#   linux: no /usr/src/linux-source-*.tar.xz (apt-get install linux-source-6.1): the corpus has only the other sources');
    return undefined;
  }
  const root = path.join(os.homedir(), '.cache', 'guts-store', tarball.replace(/\.tar\.xz$/, ''));
  const done = path.join(root, '.unpacked');
  if (!fs.existsSync(done)) {
    fs.rmSync(root, { recursive: true, force: true });
    fs.mkdirSync(root, { recursive: true, mode: 0o700 });
    execFileSync('tar', ['-xJf', path.join('/usr/src', tarball), '-C', root, '--strip-components=1', '--no-same-owner'], { stdio: ['ignore', 'ignore', 'inherit'] });
    fs.writeFileSync(done, '');
  }
  return root;
}

function firstExisting(dirs: string[]): string {
  return dirs.find((d) => fs.existsSync(d)) ?? '';
}

/** Regular files under dir (no symlinks, none over MAX_FILE), sorted, until budget bytes. */
function collect(dir: string, budget: number): Array<{ rel: string; size: number }> {
  const out: Array<{ rel: string; size: number }> = [];
  let total = 0;
  const walk = (rel: string): boolean => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(path.join(dir, rel), { withFileTypes: true });
    } catch {
      return true;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      if (e.name === '.git') continue;
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        if (!walk(r)) return false;
      } else if (e.isFile()) {
        let size: number;
        try {
          size = fs.statSync(path.join(dir, r)).size;
          fs.accessSync(path.join(dir, r), fs.constants.R_OK);
        } catch {
          continue;
        }
        if (size > MAX_FILE) continue;
        if (total + size > budget) return false;
        out.push({ rel: r, size });
        total += size;
      }
    }
    return true;
  };
  walk('');
  return out;
}

const GIT_ENV = {
  GIT_AUTHOR_NAME: 'Corpus',
  GIT_AUTHOR_EMAIL: 'corpus@guts.invalid',
  GIT_COMMITTER_NAME: 'Corpus',
  GIT_COMMITTER_EMAIL: 'corpus@guts.invalid',
};

function git(repo: string, args: string[], date: number): void {
  const when = `${1700000000 + date * 3600} +0000`;
  execFileSync('git', ['-C', repo, ...args], {
    env: { ...process.env, ...GIT_ENV, GIT_AUTHOR_DATE: when, GIT_COMMITTER_DATE: when },
    stdio: ['ignore', 'ignore', 'inherit'],
    maxBuffer: 64 << 20,
  });
}

/** One source as a git repository: files added over ADD_COMMITS commits, then EDIT_ROUNDS of small edits. */
function buildRepo(src: CorpusSource, repo: string, budget: number): { files: number; bytes: number; commits: number } {
  const files = collect(src.dir, budget);
  fs.rmSync(repo, { recursive: true, force: true });
  fs.mkdirSync(repo, { recursive: true });
  execFileSync('git', ['init', '-q', '-b', 'main', repo]);
  let commits = 0;
  const per = Math.ceil(files.length / ADD_COMMITS) || 1;
  for (let c = 0; c * per < files.length; c++) {
    for (const f of files.slice(c * per, (c + 1) * per)) {
      const dest = path.join(repo, f.rel);
      fs.mkdirSync(path.dirname(dest), { recursive: true });
      fs.copyFileSync(path.join(src.dir, f.rel), dest);
    }
    git(repo, ['add', '-A', ...(src.force ? ['--force'] : [])], commits);
    git(repo, ['commit', '-q', '--no-verify', '-m', `${src.name}: import part ${c + 1}`], commits++);
  }
  // History: every round edits one file in 40 (a line appended), as development does.
  for (let round = 1; round <= EDIT_ROUNDS; round++) {
    for (let i = round; i < files.length; i += 40) {
      fs.appendFileSync(path.join(repo, files[i].rel), `\n# edit ${round} of ${files[i].rel}\n`);
    }
    git(repo, ['add', '-A', ...(src.force ? ['--force'] : [])], commits);
    git(repo, ['commit', '-q', '--no-verify', '-m', `${src.name}: edit round ${round}`], commits++);
  }
  git(repo, ['tag', '-a', 'v1', '-m', `${src.name} v1`], commits);
  return { files: files.length, bytes: files.reduce((s, f) => s + f.size, 0), commits };
}

/**
 * The corpus for maxBytes of real files, built on first use and cached.
 * Returns a fresh copy of the data dir under work.
 */
export function realCorpus(work: string, maxBytes: number, log: (s: string) => void = () => {}): Corpus {
  const cache = process.env.GUTS_CORPUS_DIR || path.join(os.homedir(), '.cache', 'guts-store', `corpus-v${VERSION}-${Math.round(maxBytes / 1e6)}MB`);
  const doneFile = path.join(cache, 'corpus.json');
  let meta: Omit<Corpus, 'dataDir'> & { version: number } | undefined;
  try {
    meta = JSON.parse(fs.readFileSync(doneFile, 'utf8'));
    if (meta?.version !== VERSION) meta = undefined;
    // a large corpus cached before the kernel tree was installed is built again with it
    else if (maxBytes > 1e9 && !meta.repos.some((r) => path.basename(r) === 'linux') && realSources(maxBytes, log).some((s) => s.name === 'linux')) meta = undefined;
  } catch {
    meta = undefined;
  }
  if (!meta) {
    const t0 = Date.now();
    const sources = realSources(maxBytes, log);
    fs.rmSync(cache, { recursive: true, force: true });
    fs.mkdirSync(cache, { recursive: true });
    const data = path.join(cache, 'data');
    let left = maxBytes;
    const repos: string[] = [];
    let files = 0;
    let fileBytes = 0;
    let commits = 0;
    for (let i = 0; i < sources.length && left > 1 << 20; i++) {
      // an even share of what is left for each remaining source, so small sources leave room for large ones
      const share = Math.floor(left / (sources.length - i));
      const repo = path.join(cache, 'repos', sources[i].name);
      const r = buildRepo(sources[i], repo, share);
      if (r.files === 0) continue;
      execFileSync(CLI[0], [CLI[1], 'import', repo, '--repo', `corpus/${sources[i].name}`, '--data-dir', data], { stdio: ['ignore', 'ignore', 'inherit'] });
      repos.push(repo);
      files += r.files;
      fileBytes += r.bytes;
      commits += r.commits;
      left -= r.bytes;
      log(`#   ${sources[i].name}: ${r.files} files, ${(r.bytes / 1e6).toFixed(0)} MB, ${r.commits} commits (${sources[i].dir})`);
    }
    // Each import closes the store with the compactions its last flushes
    // call for still pending (RocksDB drops them at close); a node finishes
    // them in its first seconds on the data dir. The corpus is the store a
    // running node keeps, so they run here (2000 MB corpus: 488 MB with
    // half of it still LZ4 in L0 -> 407 MB, all but 1% ZSTD, in ~7 s).
    execFileSync(process.execPath, [path.join(__dirname, 'store-tool.js'), 'settle', data], { stdio: ['ignore', 'ignore', 'inherit'] });
    meta = { version: VERSION, repos, files, fileBytes, commits };
    fs.writeFileSync(doneFile, JSON.stringify(meta, null, 2) + '\n');
    log(`#   corpus built in ${((Date.now() - t0) / 1000).toFixed(0)} s, cached in ${cache}`);
  }
  const dataDir = path.join(work, 'real-data');
  fs.rmSync(dataDir, { recursive: true, force: true });
  execFileSync('cp', ['-a', path.join(cache, 'data'), dataDir]);
  // private like a store guts-node writes (a cache settled by an older
  // store-tool holds 0644 files, and verify would warn about them)
  execFileSync('chmod', ['-R', 'go-rwx', dataDir]);
  return { dataDir, repos: meta.repos, fileBytes: meta.fileBytes, files: meta.files, commits: meta.commits };
}
