// The body of POST /api/repos/:owner/:name/objects, checked before anything
// is stored (issue 11 item 9): the JSON shape, strict base64, every commit,
// tree and tag body as `git fsck --strict` judges it (src/git-validate.ts),
// and the refs as the repository will hold them once the push is applied
// (no symbolic-ref loops, HEAD on a branch, branches on commits, targets that
// exist). Each refusal is a GUTS_INVALID_ARGUMENT (HTTP 400) naming the
// offending element; a refused push stores nothing.
import { GutsError } from '../errors';
import { ObjectType, ObjectTypeName } from '../native';
import { gitObjectId, GitObject } from '../store';
import { decodeBase64Strict, mustBeCommit, objectProblem, RefEntry, refsProblems, storedRefNameProblem } from '../git-validate';
import type { RefSpec } from './node';

export const MAX_BATCH_OBJECTS = 100_000;

export interface PushBody {
  objects: GitObject[];
  refs: RefSpec[];
}

function invalid(message: string): GutsError {
  return new GutsError('GUTS_INVALID_ARGUMENT', message);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function onlyKeys(o: Record<string, unknown>, allowed: string[], where: string): void {
  const extra = Object.keys(o).filter((k) => !allowed.includes(k));
  if (extra.length) throw invalid(`${where} has unknown field(s) ${extra.map((k) => JSON.stringify(k)).join(', ')} (allowed: ${allowed.join(', ')})`);
}

/** Parses and checks the request body; throws GUTS_INVALID_ARGUMENT on the first problem. */
export function parsePushBody(body: Buffer): PushBody {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    throw invalid('request body is not valid JSON');
  }
  if (!isPlainObject(parsed)) throw invalid('request body must be a JSON object {"objects": [...], "refs": [...]}');
  onlyKeys(parsed, ['objects', 'refs'], 'request body');
  return { objects: parseObjects(parsed.objects ?? []), refs: parseRefs(parsed.refs ?? []) };
}

function parseObjects(v: unknown): GitObject[] {
  if (!Array.isArray(v)) throw invalid('"objects" must be an array');
  if (v.length > MAX_BATCH_OBJECTS) throw invalid(`at most ${MAX_BATCH_OBJECTS} objects per batch`);
  return v.map((o: unknown, i) => {
    if (!isPlainObject(o)) throw invalid(`objects[${i}] must be an object {"type", "data"}`);
    onlyKeys(o, ['type', 'data'], `objects[${i}]`);
    if (typeof o.type !== 'string' || !Object.prototype.hasOwnProperty.call(ObjectType, o.type)) {
      throw invalid(`objects[${i}].type must be commit, tree, blob or tag`);
    }
    if (typeof o.data !== 'string') throw invalid(`objects[${i}].data must be a base64 string`);
    const data = decodeBase64Strict(o.data);
    if (!data) throw invalid(`objects[${i}].data is not canonical base64 (RFC 4648, padded, no whitespace or other characters)`);
    const type = o.type as ObjectTypeName;
    const problem = objectProblem(type, data);
    if (problem) throw invalid(`objects[${i}] is not a valid git ${type}: ${problem}`);
    return { type, data };
  });
}

function parseRefs(v: unknown): RefSpec[] {
  if (!Array.isArray(v)) throw invalid('"refs" must be an array');
  const names = new Set<string>();
  return v.map((r: unknown, i) => {
    if (!isPlainObject(r)) throw invalid(`refs[${i}] must be an object {"name", "target" | "symbolic" | "delete"}`);
    onlyKeys(r, ['name', 'target', 'symbolic', 'delete'], `refs[${i}]`);
    if (typeof r.name !== 'string') throw invalid(`refs[${i}].name must be a string`);
    const bad = storedRefNameProblem(r.name);
    if (bad) throw invalid(`refs[${i}].name ${JSON.stringify(r.name)} is not a valid ref name: ${bad}`);
    if (names.has(r.name)) throw invalid(`refs[${i}]: ref ${r.name} is given twice`);
    names.add(r.name);
    const given = ['target', 'symbolic', 'delete'].filter((k) => r[k] !== undefined);
    if (given.length !== 1) throw invalid(`refs[${i}] needs exactly one of "target", "symbolic" or "delete"`);
    if (r.delete !== undefined) {
      if (r.delete !== true) throw invalid(`refs[${i}].delete must be true`);
      return { name: r.name, delete: true };
    }
    if (r.symbolic !== undefined) {
      if (typeof r.symbolic !== 'string') throw invalid(`refs[${i}].symbolic must be a ref name`);
      return { name: r.name, symbolic: r.symbolic };
    }
    if (typeof r.target !== 'string' || !/^[0-9a-f]{40}$/.test(r.target)) throw invalid(`refs[${i}].target must be a 40-hex object id`);
    return { name: r.name, target: r.target };
  });
}

/** What checkPushRefs needs of the node (the running GutsNode). */
export interface RefReader {
  getRefs(repo: string): Promise<Array<{ name: string; target?: string; symbolic?: string }>>;
  getObject(id: string): Promise<{ type: ObjectTypeName } | null>;
}

/**
 * Checks the refs of a push against the repository as it will be: the stored
 * refs with the update applied must pass refsProblems(), every target must be
 * in the batch or the store, and branches (and a detached HEAD) must name commits.
 */
export async function checkPushRefs(node: RefReader, repo: string, objects: GitObject[], refs: RefSpec[]): Promise<void> {
  if (!refs.length) return;
  const after = new Map<string, RefEntry>((await node.getRefs(repo)).map((r) => [r.name, r]));
  for (const r of refs) {
    if (r.delete) after.delete(r.name);
    else after.set(r.name, r.symbolic !== undefined ? { name: r.name, symbolic: r.symbolic } : { name: r.name, target: r.target });
  }
  const problems = refsProblems([...after.values()]);
  if (problems.length) throw invalid(problems[0]);

  const targets = refs.filter((r) => r.target);
  if (!targets.length) return;
  // Types of the batch's objects by id (hashed only when refs point somewhere).
  const inBatch = new Map<string, ObjectTypeName>();
  for (const o of objects) inBatch.set(gitObjectId(o.type, o.data), o.type);
  for (const r of targets) {
    const type = inBatch.get(r.target!) ?? (await node.getObject(r.target!))?.type;
    if (!type) throw invalid(`ref ${r.name} points to missing object ${r.target}`);
    if (mustBeCommit(r.name) && type !== 'commit') throw invalid(`ref ${r.name} must point to a commit, not a ${type} (${r.target})`);
  }
}
