// Every command's --json output, run for real, checked mechanically against
// the naming scheme of docs/JSON.md (snake_case, *_bytes, *_seconds, sha256
// hex, absolute paths, ISO-8601 UTC times, cpu_share in percent) and against
// the shapes documented there: no key that docs/JSON.md does not show.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { cli, ROOT } from './fixtures/cli';
import { makeGitRepo } from './fixtures/git-repo';
import { startNode } from './lib/node-proc';

type Json = Record<string, unknown>;

const SNAKE = /^[a-z][a-z0-9]*(_[a-z0-9]+)*$/;
const FORBIDDEN_KEY = /(_ms|_s|_size|_kb|_mb|_millis)$|^(bytes|size|duration|elapsed|checksum|mtime_ms)$/;
const PATH_KEYS = new Set(['file', 'dir', 'data_dir', 'target', 'sidecar_file', 'config_file', 'git_repo']);
const TIME_KEYS = new Set(['created', 'until', 'started_at', 'expires']);
const ISO_UTC = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?Z$/;

/** Every violation of the naming scheme in `v`, as "where: what". */
function namingProblems(v: unknown, where = '$'): string[] {
  const out: string[] = [];
  if (Array.isArray(v)) v.forEach((x, i) => out.push(...namingProblems(x, `${where}[${i}]`)));
  else if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v as Json)) {
      const at = `${where}.${k}`;
      if (!SNAKE.test(k)) out.push(`${at}: key is not snake_case`);
      if (FORBIDDEN_KEY.test(k)) out.push(`${at}: use *_bytes / *_seconds / sha256`);
      if (k.endsWith('_bytes')) {
        const nums = x !== null && typeof x === 'object' ? Object.values(x as Json) : [x];
        if (!nums.every((n) => n === null || (Number.isInteger(n) && (n as number) >= 0))) out.push(`${at}: not a byte count`);
      }
      if (k.endsWith('_seconds') && x !== null && !(typeof x === 'number' && x >= 0)) out.push(`${at}: not seconds`);
      if (k === 'sha256' && x !== null && !/^[0-9a-f]{64}$/.test(String(x))) out.push(`${at}: not lower-case hex SHA-256`);
      if (PATH_KEYS.has(k) && x !== null && typeof x === 'string' && !path.isAbsolute(x)) out.push(`${at}: not an absolute path: ${x}`);
      if (TIME_KEYS.has(k) && x !== null && !ISO_UTC.test(String(x))) out.push(`${at}: not ISO-8601 UTC: ${x}`);
      if (k === 'cpu_share' && !(Number.isInteger(x) && (x as number) >= 5 && (x as number) <= 100)) out.push(`${at}: not a percentage as on the command line`);
      out.push(...namingProblems(x, at));
    }
  }
  return out;
}

/** Keys of `v` (deep) that `doc` does not show. Arrays are compared by their first element. */
function undocumented(v: unknown, doc: unknown, where = '$'): string[] {
  if (Array.isArray(v)) return Array.isArray(doc) && doc.length ? v.flatMap((x, i) => undocumented(x, doc[0], `${where}[${i}]`)) : [];
  if (!v || typeof v !== 'object' || !doc || typeof doc !== 'object' || Array.isArray(doc)) return [];
  const out: string[] = [];
  for (const [k, x] of Object.entries(v as Json)) {
    if (!(k in (doc as Json))) out.push(`${where}.${k}`);
    else out.push(...undocumented(x, (doc as Json)[k], `${where}.${k}`));
  }
  return out;
}

/** docs/JSON.md: "### title" -> the JSON blocks of that section, parsed. */
function documentedShapes(): Map<string, unknown[]> {
  const text = fs.readFileSync(path.join(ROOT, 'docs', 'JSON.md'), 'utf8');
  const shapes = new Map<string, unknown[]>();
  for (const section of text.split(/^### /m).slice(1)) {
    const title = section.slice(0, section.indexOf('\n')).trim();
    const blocks = [...section.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => JSON.parse(m[1]) as unknown);
    shapes.set(title, blocks);
  }
  return shapes;
}

t.test('every command: --json follows the naming scheme and the documented shape', async (t) => {
  const docs = documentedShapes();
  const doc = (title: string, i = 0) => {
    const d = docs.get(title)?.[i];
    if (d === undefined) throw new Error(`docs/JSON.md has no JSON block ${i} under "### ${title}"`);
    return d;
  };
  const dir = t.testdir({ out: {}, 'config.yaml': 'backup:\n  level: 3\n' });
  const data = path.join(dir, 'data');
  const restored = path.join(dir, 'restored');
  const archive = path.join(dir, 'out', 'guts.tar.zst');
  const gitDir = makeGitRepo(path.join(dir, 'src'));
  const checked: string[] = [];

  const json = (title: string, args: string[], opts: { docIndex?: number; exit?: number } = {}): Json => {
    const r = cli([...args, '--json']);
    const what = `guts-node ${args.join(' ')} --json`;
    t.equal(r.status, opts.exit ?? 0, `${what}: ${r.stderr}`);
    let out: Json;
    try {
      out = JSON.parse(r.stdout) as Json;
    } catch {
      t.fail(`${what}: stdout is not one JSON document:\n${r.stdout}`);
      return {};
    }
    t.same(namingProblems(out), [], `${what}: naming scheme`);
    t.same(undocumented(out, doc(title, opts.docIndex)), [], `${what}: every key is in docs/JSON.md "### ${title}"`);
    checked.push(args.filter((a) => !a.startsWith('-') && !a.startsWith('/')).slice(0, 2).join(' '));
    return out;
  };

  const seeded = json('dev seed', ['--data-dir', data, 'dev', 'seed', '--size', '1MiB']);
  t.equal(seeded.data_dir, data);
  const created = json('backup create', ['--data-dir', data, 'backup', 'create', '--output', archive]);
  t.equal(created.file, archive);
  t.equal(created.cpu_share, 100, 'not paced: 100 percent');
  t.equal(fs.readFileSync(`${archive}.sha256`, 'utf8').split(' ')[0], created.sha256, 'sha256 is what the sidecar holds');
  const verified = json('backup verify', ['backup', 'verify', archive, '--deep']);
  t.equal(verified.status, 'VALID');
  t.equal(verified.sha256, created.sha256);
  t.equal(verified.file, archive, 'the full path');
  const restoredR = json('backup restore', ['backup', 'restore', archive, '--target', restored]);
  t.equal(restoredR.target, restored);
  t.equal(restoredR.total_bytes, created.total_bytes);
  const v = json('verify', ['--data-dir', restored, 'verify', '--full', '--list-affected']);
  t.equal(v.ok, true);
  json('verify', ['--data-dir', restored, 'verify']);
  const stopped = json('status', ['--data-dir', restored, 'status']);
  t.equal(stopped.running, false);
  const imported = json('import', ['--data-dir', data, 'import', gitDir, '--repo', 'bob/src']);
  t.equal(imported.git_repo, gitDir);
  const exported = json('export', ['--data-dir', data, 'export', '--repo', 'bob/src', path.join(dir, 'exported.git')]);
  t.equal(exported.head, imported.head, 'HEAD named the same way by import and export');

  const node = await startNode(data, [], { GUTS_CONFIG: '/dev/null' });
  t.teardown(() => node.stop());
  const running = json('status', ['--data-dir', data, 'status']);
  t.equal(running.running, true);
  t.equal((running.last_backup as Json).sha256, created.sha256);
  const hot = json('backup create', ['--data-dir', data, 'backup', 'create', '--hot', '--cpu-share', '40', '--output', path.join(dir, 'out', 'hot.tar.gz')]);
  t.equal(hot.cpu_share, 40, 'cpu_share as given on the command line');
  t.equal(hot.via, 'node');
  const compactedNode = json('compact', ['--data-dir', data, 'compact']);
  t.equal(compactedNode.via, 'node');
  const entered = json('maintenance enter / maintenance exit', ['--data-dir', data, 'maintenance', 'enter', '--timeout', '1m']);
  t.equal(entered.maintenance, true);
  const left = json('maintenance enter / maintenance exit', ['--data-dir', data, 'maintenance', 'exit'], { docIndex: 1 });
  t.equal(left.was_active, true);
  await node.stop();
  const compacted = json('compact', ['--data-dir', data, 'compact']);
  t.equal(compacted.via, 'store');

  const config = path.join(dir, 'config.yaml');
  const set = json('config get / config set / config keys', ['--config', config, 'config', 'set', 'backup.level', '5']);
  t.same(set, { key: 'backup.level', value: 5, config_file: config });
  const keys = json('config get / config set / config keys', ['config', 'keys'], { docIndex: 1 });
  t.ok((keys.keys as Json[]).some((k) => k.key === 'backup.level'));
  t.equal(cli(['--config', config, 'config', 'get', 'backup.level', '--json']).stdout, '5\n', 'config get KEY --json: the value');
  const keyFile = path.join(dir, 'node.key');
  const written = json('keygen', ['keygen', '--output', keyFile]);
  t.same(Object.keys(written), ['file', 'public_key'], 'no private key in the output when it went to a file');
  const printed = json('keygen', ['keygen']);
  t.match(printed, { file: null, public_key: /^[0-9a-f]{64}$/, private_key: /^[0-9a-f]{64}$/ });
  t.comment(`checked --json of: ${[...new Set(checked)].join(', ')}`);
});

t.test('the checks themselves catch the outliers they are for', async (t) => {
  t.same(namingProblems({ elapsed_ms: 3 }), ['$.elapsed_ms: use *_bytes / *_seconds / sha256']);
  t.same(namingProblems({ dataDir: '/x' }), ['$.dataDir: key is not snake_case']);
  t.same(namingProblems({ file: 'x.tar.zst' }), ['$.file: not an absolute path: x.tar.zst']);
  t.same(namingProblems({ sha256: 'SHA256:AB' }), ['$.sha256: not lower-case hex SHA-256']);
  t.same(namingProblems({ cpu_share: 0.5 }), ['$.cpu_share: not a percentage as on the command line']);
  t.same(namingProblems({ created: '2026-01-02 03:04:05' }), ['$.created: not ISO-8601 UTC: 2026-01-02 03:04:05']);
  t.same(namingProblems({ a: [{ duration_s: 1 }] }), ['$.a[0].duration_s: use *_bytes / *_seconds / sha256']);
  t.same(undocumented({ a: 1, b: { c: 2, d: 3 } }, { a: 0, b: { c: 0 } }), ['$.b.d']);
});
