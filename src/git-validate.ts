// Validation of git objects and refs the way `git fsck --strict` judges them
// (issue 11 item 9): what the node's HTTP API accepts, and what `export`
// checks before it writes a repository. Pure functions over buffers; each
// returns null (valid) or one line saying what is wrong.
//
// Rules follow git 2.39's fsck.c: every message of level error or warn
// (which --strict turns into errors) is refused. Beyond fsck, and like
// `git mktag`: object ids must be lower-case hex, a tag needs a tagger and a
// valid tag name, and nothing may follow the tagger line but the message.
// Not checked here (they need other objects): whether referenced objects
// exist and have the type the reference claims, and the contents of
// .gitmodules / .gitattributes blobs.
import { ObjectTypeName } from './native';

const NL = 0x0a;
const HEX40 = /^[0-9a-f]{40}$/;

/** Strict base64 (RFC 4648 §4, padded, no whitespace, canonical final bits): null when `s` is not that. */
export function decodeBase64Strict(s: string): Buffer | null {
  // Node decodes leniently: it skips characters outside the alphabet, accepts
  // base64url and missing padding. Each of those is ruled out with native
  // scans rather than a full re-encode (the node ingests 64 MiB bodies).
  if (s.length % 4 !== 0) return null;
  const eq = s.indexOf('=');
  if (eq >= 0 && (eq < s.length - 2 || s[s.length - 1] !== '=')) return null;
  if (s.includes('-') || s.includes('_')) return null;
  const pad = eq < 0 ? 0 : s.length - eq;
  const b = Buffer.from(s, 'base64');
  if (b.length !== (s.length / 4) * 3 - pad) return null; // a character outside the alphabet was skipped
  // canonical: the last quantum's unused bits are zero (it re-encodes to itself)
  if (pad && b.subarray(b.length - (3 - pad)).toString('base64') !== s.slice(-4)) return null;
  return b;
}

/** git's check_refname_format(name, 0): null when valid. */
export function refNameProblem(name: string): string | null {
  if (name.length === 0 || name.length > 1024) return 'empty or longer than 1024 bytes';
  if (name === '@') return 'is "@"';
  if (name.endsWith('.')) return 'ends with "."';
  if (name.includes('@{')) return 'contains "@{"';
  const parts = name.split('/');
  if (parts.length < 2) return 'has one level only';
  for (const c of parts) {
    if (c === '') return 'has an empty path component';
    if (c.startsWith('.')) return `component "${c}" starts with "."`;
    if (c.endsWith('.lock')) return `component "${c}" ends with ".lock"`;
    if (c.includes('..')) return 'contains ".."';
    // eslint-disable-next-line no-control-regex
    if (/[\x00-\x20\x7f~^:?*[\\]/.test(c)) return `component "${c}" holds a space, control character or one of ~^:?*[\\`;
  }
  return null;
}

/** A ref the store may hold: HEAD, or a valid name under refs/. */
export function storedRefNameProblem(name: string): string | null {
  if (name === 'HEAD') return null;
  if (!name.startsWith('refs/')) return 'is neither HEAD nor under refs/';
  return refNameProblem(name);
}

// ---- commits and tags ----

/** verify_headers(): no NUL in the header; a blank line or a final newline ends it. */
function headerProblem(b: Buffer): string | null {
  const end = b.indexOf('\n\n');
  const header = end < 0 ? b : b.subarray(0, end);
  if (header.includes(0)) return 'NUL byte in the header';
  if (end < 0 && (b.length === 0 || b[b.length - 1] !== NL)) return 'unterminated header';
  return null;
}

/** One header line "<key> <value>\n" at `pos`: the value and the position after it, or null. */
function line(b: Buffer, pos: number, key: string): { value: string; next: number } | null {
  const k = key + ' ';
  if (b.length < pos + k.length || b.toString('latin1', pos, pos + k.length) !== k) return null;
  const nl = b.indexOf(NL, pos + k.length);
  if (nl < 0) return null;
  return { value: b.toString('utf8', pos + k.length, nl), next: nl + 1 };
}

const IDENT_DATE_MAX = 2n ** 63n - 1n;

/** fsck_ident() on the value of an author/committer/tagger line (without the newline). */
export function identProblem(v: string): string | null {
  if (v.startsWith('<')) return 'missing name before the email';
  const lt = v.search(/[<>]/);
  if (lt < 0 || v[lt] === '>') return lt < 0 ? 'missing email' : 'bad name';
  if (lt === 0 || v[lt - 1] !== ' ') return 'missing space before the email';
  const rest = v.slice(lt + 1);
  const gt = rest.search(/[<>]/);
  if (gt < 0 || rest[gt] !== '>') return 'bad email';
  const m = /^ [ \t]*(\d+) ([+-]\d{4})$/.exec(rest.slice(gt + 1));
  if (!m) return 'bad date or timezone (expected "<email> <seconds> <+hhmm>")';
  if (m[1].length > 1 && m[1][0] === '0') return 'zero-padded date';
  if (m[1].length > 19 || BigInt(m[1]) >= IDENT_DATE_MAX) return 'date overflows';
  return null;
}

export function commitProblem(b: Buffer): string | null {
  const h = headerProblem(b);
  if (h) return h;
  let pos = 0;
  const tree = line(b, pos, 'tree');
  if (!tree) return 'missing "tree" line';
  if (!HEX40.test(tree.value)) return 'bad "tree" line (expected 40 lower-case hex digits)';
  pos = tree.next;
  for (let p = line(b, pos, 'parent'); p; p = line(b, pos, 'parent')) {
    if (!HEX40.test(p.value)) return 'bad "parent" line (expected 40 lower-case hex digits)';
    pos = p.next;
  }
  const author = line(b, pos, 'author');
  if (!author) return 'missing "author" line';
  const a = identProblem(author.value);
  if (a) return `bad "author" line: ${a}`;
  pos = author.next;
  if (line(b, pos, 'author')) return 'multiple "author" lines';
  const committer = line(b, pos, 'committer');
  if (!committer) return 'missing "committer" line';
  const c = identProblem(committer.value);
  if (c) return `bad "committer" line: ${c}`;
  if (b.includes(0)) return 'NUL byte in the commit';
  return null;
}

export function tagProblem(b: Buffer): string | null {
  const h = headerProblem(b);
  if (h) return h;
  const object = line(b, 0, 'object');
  if (!object) return 'missing "object" line';
  if (!HEX40.test(object.value)) return 'bad "object" line (expected 40 lower-case hex digits)';
  const type = line(b, object.next, 'type');
  if (!type) return 'missing "type" line';
  if (!['commit', 'tree', 'blob', 'tag'].includes(type.value)) return `bad "type" line: "${type.value.slice(0, 40)}"`;
  const tag = line(b, type.next, 'tag');
  if (!tag) return 'missing "tag" line';
  const n = refNameProblem(`refs/tags/${tag.value}`);
  if (n) return `bad tag name: ${n}`;
  const tagger = line(b, tag.next, 'tagger');
  if (!tagger) return 'missing "tagger" line';
  const t = identProblem(tagger.value);
  if (t) return `bad "tagger" line: ${t}`;
  if (tagger.next < b.length && b[tagger.next] !== NL) return 'extra header lines after "tagger"';
  return null;
}

// ---- trees ----

const MODES = new Set(['100644', '100755', '120000', '40000', '160000']);
// Code points HFS+ ignores in names (is_hfs_dotgit): ".g\u200cit" is ".git" there.
// eslint-disable-next-line no-misleading-character-class
const HFS_IGNORABLE = /[\u200c-\u200f\u202a-\u202e\u206a-\u206f\ufeff]/g;

/** ".git" on some file system git supports (is_hfs_dotgit / is_ntfs_dotgit). */
function isDotGit(name: string): boolean {
  if (name.replace(HFS_IGNORABLE, '').toLowerCase() === '.git') return true;
  // NTFS: any backslash-separated component ".git" or "git~1", then only spaces and dots
  return name.split('\\').some((c) => /^(\.git|git~1)[ .]*$/i.test(c));
}

function isNamed(name: string, file: string): boolean {
  const n = name.replace(HFS_IGNORABLE, '').toLowerCase();
  return n === file || n.replace(/[ .]+$/, '') === file;
}

const ZERO_ID = Buffer.alloc(20);

/** Whether the name needs the .git / .gitmodules checks at all (the fast path skips the rest). */
function mayBeSpecial(b: Buffer, start: number, end: number): boolean {
  const c = b[start];
  if (c === 0x2e || (c | 0x20) === 0x67) return true; // ".", "g", "G"
  for (let i = start; i < end; i++) if (b[i] >= 0x80 || b[i] === 0x5c) return true; // HFS+ ignorables, NTFS "\"
  return false;
}

/**
 * git's tree order (verify_ordered): names compare bytewise, a directory as
 * if its name ended in "/". Negative when entry a sorts before entry b.
 */
function treeOrder(b: Buffer, aStart: number, aEnd: number, aDir: boolean, bStart: number, bEnd: number, bDir: boolean): number {
  const len = Math.min(aEnd - aStart, bEnd - bStart);
  const c = b.compare(b, bStart, bStart + len, aStart, aStart + len);
  if (c) return c;
  const ca = aEnd - aStart > len ? b[aStart + len] : aDir ? 0x2f : 0;
  const cb = bEnd - bStart > len ? b[bStart + len] : bDir ? 0x2f : 0;
  return ca - cb;
}

export function treeProblem(b: Buffer): string | null {
  let pos = 0;
  let prevStart = -1;
  let prevEnd = -1;
  let prevDir = false;
  // entry names as offsets: a file "a" and a directory "a" need not be adjacent ("a", "a.c", "a/")
  const starts: number[] = [];
  const ends: number[] = [];
  while (pos < b.length) {
    const sp = b.indexOf(0x20, pos);
    if (sp < 0) return `entry at byte ${pos}: no space after the mode`;
    const nul = b.indexOf(0, sp + 1);
    if (nul < 0 || nul + 21 > b.length) return `entry at byte ${pos}: truncated`;
    const mode = b.toString('latin1', pos, sp);
    const at = () => `entry "${b.toString('utf8', sp + 1, Math.min(nul, sp + 101))}"`;
    if (!MODES.has(mode)) {
      if (!/^[0-7]+$/.test(mode)) return `${at()}: malformed mode "${mode.slice(0, 20)}"`;
      return `${at()}: ${mode.startsWith('0') ? 'zero-padded' : 'bad'} mode ${mode}`;
    }
    const start = sp + 1;
    if (nul === start) return 'empty entry name';
    if (b.indexOf(0x2f, start) >= 0 && b.indexOf(0x2f, start) < nul) return `${at()}: name contains "/"`;
    if (mayBeSpecial(b, start, nul)) {
      const name = b.toString('utf8', start, nul);
      if (name === '.' || name === '..') return `${at()}: name is "${name}"`;
      if (isDotGit(name)) return `${at()}: name is ".git"`;
      if (mode === '120000' && (isNamed(name, '.gitmodules') || isNamed(name, '.gitattributes'))) return `${at()}: is a symbolic link`;
    }
    if (b.compare(ZERO_ID, 0, 20, nul + 1, nul + 21) === 0) return `${at()}: null object id`;
    const dir = mode === '40000';
    if (prevStart >= 0) {
      const order = treeOrder(b, prevStart, prevEnd, prevDir, start, nul, dir);
      if (order > 0) return `${at()}: entries not sorted in git order`;
      if (order === 0) return `${at()}: duplicate entry`;
    }
    if (dir) {
      // A file of the same name sorts before this directory, separated at most
      // by names extending it with a byte below "/": walk back over those.
      const len = nul - start;
      for (let i = starts.length - 1; i >= 0; i--) {
        const l = ends[i] - starts[i];
        if (l < len || b.compare(b, start, nul, starts[i], starts[i] + len) !== 0) break;
        if (l === len) return `${at()}: duplicate entry`;
      }
    }
    starts.push(start);
    ends.push(nul);
    prevStart = start;
    prevEnd = nul;
    prevDir = dir;
    pos = nul + 21;
  }
  return null;
}

/** Null when `body` is a valid git object of `type`; else what is wrong with it. */
export function objectProblem(type: ObjectTypeName, body: Buffer): string | null {
  switch (type) {
    case 'blob':
      return null;
    case 'commit':
      return commitProblem(body);
    case 'tree':
      return treeProblem(body);
    case 'tag':
      return tagProblem(body);
  }
}

// ---- refs as a whole ----

export interface RefEntry {
  name: string;
  target?: string;
  symbolic?: string;
}

/** Longest chain of symbolic refs git follows (refs/refs-internal.h SYMREF_MAXDEPTH). */
const SYMREF_MAX_DEPTH = 5;

/**
 * Problems of a repository's refs as git would meet them: names, symbolic
 * refs that loop or chain deeper than git follows, HEAD pointing outside
 * refs/heads/, symbolic refs pointing outside refs/. HEAD may point to a
 * branch that does not exist (an unborn branch); any other symbolic ref must
 * end at a ref with a target (git fsck: "invalid sha1 pointer" otherwise).
 */
export function refsProblems(refs: RefEntry[]): string[] {
  const problems: string[] = [];
  const byName = new Map(refs.map((r) => [r.name, r]));
  for (const r of refs) {
    const n = storedRefNameProblem(r.name);
    if (n) {
      problems.push(`ref ${JSON.stringify(r.name)}: invalid name (${n})`);
      continue;
    }
    if (r.symbolic === undefined) continue;
    const s = refNameProblem(r.symbolic);
    if (s || !r.symbolic.startsWith('refs/')) {
      problems.push(`symbolic ref ${r.name} -> ${JSON.stringify(r.symbolic)}: the target is not a ref under refs/${s ? ` (${s})` : ''}`);
      continue;
    }
    if (r.name === 'HEAD' && !r.symbolic.startsWith('refs/heads/')) {
      problems.push(`symbolic ref HEAD -> ${r.symbolic}: HEAD must point to a branch (refs/heads/...)`);
      continue;
    }
    const seen = [r.name];
    let cur: RefEntry | undefined = r;
    while (cur?.symbolic !== undefined) {
      if (seen.includes(cur.symbolic)) {
        problems.push(`symbolic ref ${r.name} loops: ${[...seen, cur.symbolic].join(' -> ')}`);
        break;
      }
      seen.push(cur.symbolic);
      if (seen.length > SYMREF_MAX_DEPTH + 1) {
        problems.push(`symbolic ref ${r.name} chains deeper than git follows (${SYMREF_MAX_DEPTH}): ${seen.join(' -> ')}`);
        break;
      }
      cur = byName.get(cur.symbolic);
      if (!cur && r.name !== 'HEAD') problems.push(`symbolic ref ${r.name} points to ${seen[seen.length - 1]}, which does not exist (only HEAD may point to an unborn branch)`);
    }
  }
  return problems;
}

/** Refs git requires to name a commit: branches, and a detached HEAD. */
export function mustBeCommit(name: string): boolean {
  return name === 'HEAD' || name.startsWith('refs/heads/');
}

// ---- links between objects (what `git fsck --full` follows) ----

/** Links from one object to others: [id, type the link requires]. Gitlinks (submodule commits) are not followed, as in git. */
export function objectLinks(type: ObjectTypeName, b: Buffer): Array<[string, ObjectTypeName]> {
  const links: Array<[string, ObjectTypeName]> = [];
  if (type === 'tree') {
    for (let pos = 0; pos < b.length; ) {
      const sp = b.indexOf(0x20, pos);
      const nul = sp < 0 ? -1 : b.indexOf(0, sp + 1);
      if (nul < 0 || nul + 21 > b.length) break; // an unparsable tree: objectProblem() says why
      const mode = b.toString('latin1', pos, sp);
      if (mode !== '160000') links.push([b.toString('hex', nul + 1, nul + 21), mode === '40000' ? 'tree' : 'blob']);
      pos = nul + 21;
    }
  } else if (type === 'commit' || type === 'tag') {
    const end = b.indexOf('\n\n');
    const header = b.toString('latin1', 0, end < 0 ? b.length : end);
    for (const l of header.split('\n')) {
      let m: RegExpExecArray | null;
      if (type === 'commit' && (m = /^(tree|parent) ([0-9a-f]{40})$/.exec(l))) links.push([m[2], m[1] === 'tree' ? 'tree' : 'commit']);
      else if (type === 'commit' && !/^(tree|parent) /.test(l)) break; // tree and parents come first
      if (type === 'tag' && (m = /^object ([0-9a-f]{40})$/.exec(l))) {
        const t = /\ntype (commit|tree|blob|tag)\n/.exec(header + '\n');
        if (t) links.push([m[1], t[1] as ObjectTypeName]);
        break;
      }
    }
  }
  return links;
}

/**
 * Collects the objects of a repository and their links; problems() then says
 * what git fsck --full would find broken. A commit whose parent is absent is
 * the edge of a shallow history (an imported shallow clone): not a problem,
 * but listed by shallowCommits() for the repository's `shallow` file.
 */
export class LinkChecker {
  private readonly types = new Map<string, ObjectTypeName>();
  private readonly links: Array<[string, ObjectTypeName, string]> = [];

  add(id: string, type: ObjectTypeName, body: Buffer): void {
    this.types.set(id, type);
    for (const [to, want] of objectLinks(type, body)) this.links.push([to, want, id]);
  }

  typeOf(id: string): ObjectTypeName | undefined {
    return this.types.get(id);
  }

  /** Commits with a parent the repository lacks, sorted. */
  shallowCommits(): string[] {
    const out = new Set<string>();
    for (const [to, want, from] of this.links) {
      if (want === 'commit' && this.types.get(from) === 'commit' && !this.types.has(to)) out.add(from);
    }
    return [...out].sort();
  }

  /** The first few broken links: a linked object that is absent or of another type (missing parents aside). */
  problems(max = 5): string[] {
    const out: string[] = [];
    for (const [to, want, from] of this.links) {
      const have = this.types.get(to);
      if (have === want) continue;
      const fromType = this.types.get(from);
      if (!have && want === 'commit' && fromType === 'commit') continue; // shallow edge
      out.push(have ? `${fromType} ${from} names ${to} as a ${want}, but it is a ${have}` : `${fromType} ${from} names ${want} ${to}, which is not in the repository`);
      if (out.length >= max) break;
    }
    return out;
  }
}
