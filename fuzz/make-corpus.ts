// Regenerates the seed corpus in fuzz/corpus/ (committed; keep it < 1 MB):
// small real archives made by `guts-node backup create` in each format, stock
// tool variants (one zstd frame, a zstd stream of unknown size, gzip members,
// pax headers) and hostile archives (traversal, absolute paths, links,
// devices, fifos, pax and GNU long-name tricks, duplicates, size lies, bombs).
//   npx tsc -p . && npx ts-node --transpile-only fuzz/make-corpus.ts
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { buildArchive, compress, END, indexText, noise, paxEntry, rawArchive, rawEntry, SrcFile, text } from '../test/fixtures/archives';

const ROOT = path.resolve(__dirname, '..');
const OUT = path.join(ROOT, 'fuzz', 'corpus');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'guts-corpus-'));

function cli(args: string[]): void {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'guts-node.js'), ...args], { encoding: 'utf8', env: { ...process.env, GUTS_CONFIG: '/nonexistent.yaml' } });
  if (r.status !== 0) throw new Error(`guts-node ${args.join(' ')}: ${r.stderr}`);
}

function put(name: string, bytes: Buffer): void {
  fs.writeFileSync(path.join(OUT, name), bytes);
}

fs.rmSync(OUT, { recursive: true, force: true });
fs.mkdirSync(OUT, { recursive: true });
try {
  // real archives of a tiny store, as the product writes them
  const data = path.join(tmp, 'data');
  cli(['--data-dir', data, 'dev', 'seed', '--size', '8KiB', '--blocks', '3']);
  for (const ext of ['tar.zst', 'tar.gz', 'tar']) {
    const out = path.join(tmp, `real.${ext}`);
    cli(['--data-dir', data, 'backup', 'create', '--output', out, ...(ext === 'tar' ? [] : ['--level', ext === 'tar.gz' ? '9' : '19'])]);
    put(`real.${ext}`, fs.readFileSync(out));
  }

  // stock-tool variants of a small archive
  const files: SrcFile[] = [
    { path: 'db/CURRENT', data: Buffer.from('MANIFEST-000001\n') },
    { path: 'db/000001.sst', data: noise(1500, 3) },
    { path: 'consensus/000002.sst', data: text(3000, 4) },
    { path: 'keys/node.key', data: Buffer.from('aa\nbb\n'), mode: 0o600 },
  ];
  for (const [name, compression, tarFormat] of [
    ['frames.tar.zst', 'zstd-frames', 'gnu'],
    ['stream.tar.zst', 'zstd-stream', 'posix'],
    ['members.tar.gz', 'gzip-members', 'gnu'],
    ['pax.tar', 'none', 'posix'],
  ] as const) {
    put(name, fs.readFileSync(buildArchive(tmp, name, { files, compression, tarFormat, frameSize: 2048, sidecar: false }).path));
  }

  // hostile archives (plain tar: the parser sees every byte the fuzzer changes)
  const legit = files.slice(0, 2);
  const entries = () => [rawEntry({ name: 'db', type: '5', mode: 0o700 }), ...legit.map((f) => rawEntry({ name: f.path, data: f.data }))];
  const hostile: Record<string, Buffer> = {
    'dotdot.tar': rawArchive(legit, [...entries(), rawEntry({ name: '../x', data: Buffer.from('x') })]).tar,
    'absolute.tar': rawArchive(legit, [...entries(), rawEntry({ name: '/tmp/x', data: Buffer.from('x') })]).tar,
    'symlink.tar': rawArchive(legit, [...entries(), rawEntry({ name: 'db/l', type: '2', linkname: '../..' })]).tar,
    'symlink-through.tar': rawArchive([...legit, { path: 'db/l/p', data: Buffer.from('x') }], [...entries(), rawEntry({ name: 'db/l', type: '2', linkname: '/tmp' }), rawEntry({ name: 'db/l/p', data: Buffer.from('x') })]).tar,
    'hardlink.tar': rawArchive(legit, [...entries(), rawEntry({ name: 'db/h', type: '1', linkname: '/etc/passwd' })]).tar,
    'chardev.tar': rawArchive(legit, [...entries(), rawEntry({ name: 'db/null', type: '3', devmajor: 1, devminor: 3 })]).tar,
    'fifo.tar': rawArchive(legit, [...entries(), rawEntry({ name: 'db/f', type: '6' })]).tar,
    'pax-path.tar': rawArchive(legit, [...entries(), paxEntry({ path: '../pax', size: '1' }), rawEntry({ name: 'db/i', data: Buffer.from('x') })]).tar,
    'gnu-longname.tar': rawArchive(legit, [...entries(), rawEntry({ name: '././@LongLink', type: 'L', data: Buffer.from('../' + 'l'.repeat(120) + '\0') }), rawEntry({ name: 'db/s', data: Buffer.from('x') })]).tar,
    'duplicate.tar': rawArchive(legit, [...entries(), rawEntry({ name: 'db/CURRENT', data: Buffer.from('MANIFEST-000002\n') })]).tar,
    'size-lie.tar': rawArchive([...legit, { path: 'db/2.sst', data: Buffer.alloc(10) }], [...entries(), rawEntry({ name: 'db/2.sst', data: Buffer.alloc(5000, 1) })]).tar,
    'huge-index.tar': Buffer.concat([rawEntry({ name: 'GUTS-INDEX', data: Buffer.from(indexText(legit) + '1000000000000000 644 db/huge\n') }), ...entries(), rawEntry({ name: 'db/huge', size: 1000000000000000 }), END]),
    'base256.tar': rawArchive([...legit, { path: 'db/3', data: Buffer.alloc(4) }], [...entries(), rawEntry({ name: 'db/3', size: 2n ** 62n })]).tar,
    'no-index.tar': Buffer.concat([...entries(), END]),
  };
  for (const [name, tar] of Object.entries(hostile)) put(name, tar);
  // a small bomb: a valid head, then frames of zeros beyond what the index declares
  const head = compress(tmp, rawArchive(legit, entries()).tar, 'zstd');
  put('bomb.tar.zst', Buffer.concat([head, ...Array.from({ length: 4 }, () => compress(tmp, Buffer.alloc(1 << 20), 'zstd'))]));
  put('symlink.tar.gz', compress(tmp, hostile['symlink.tar'], 'gzip'));
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
const total = fs.readdirSync(OUT).reduce((s, n) => s + fs.statSync(path.join(OUT, n)).size, 0);
console.log(`fuzz/corpus: ${fs.readdirSync(OUT).length} files, ${total} bytes`);
