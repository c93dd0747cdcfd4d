// Durable writes: concurrent atomic writes of one file never share a temp file.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { parseTempName, tempPathFor, writeFileAtomicAsync } from '../src/fsutil';

t.test('writeFileAtomicAsync: 200 concurrent writes of one file all land, nothing left behind', async (t) => {
  const dir = t.testdir({});
  const file = path.join(dir, 'state.json');
  // Before temp names were unique, writes started in the same millisecond
  // shared one temp file and all but the first rename failed with ENOENT.
  const writes = Array.from({ length: 200 }, (_, i) => writeFileAtomicAsync(file, `{"n":${i}}\n`));
  const results = await Promise.allSettled(writes);
  t.same(results.filter((r) => r.status === 'rejected'), [], 'every write resolved');
  t.match(fs.readFileSync(file, 'utf8'), /^\{"n":\d+\}\n$/, 'the file holds one whole write');
  t.same(fs.readdirSync(dir), ['state.json'], 'no temp file left');
  t.equal(fs.statSync(file).mode & 0o777, 0o600);
});

t.test('tempPathFor: beside the file, hidden, unique within a millisecond', async (t) => {
  const names = new Set(Array.from({ length: 10_000 }, () => tempPathFor('/x/y/state.json')));
  t.equal(names.size, 10_000);
  for (const n of [...names].slice(0, 3)) t.match(n, new RegExp(`^/x/y/\\.state\\.json\\.tmp-${process.pid}-[0-9a-z]+-[0-9a-z]+$`));
  t.match(tempPathFor('/x/f.tar', 'upload'), /^\/x\/\.f\.tar\.upload-\d+-/);
});

t.test('parseTempName: reads back what tempPathFor made, and older builds\' names', async (t) => {
  t.same(parseTempName(path.basename(tempPathFor('/x/f.tar.zst', 'upload'))), { base: 'f.tar.zst', tag: 'upload', pid: process.pid });
  t.same(parseTempName(path.basename(tempPathFor('/x/state.json'))), { base: 'state.json', tag: 'tmp', pid: process.pid });
  t.same(parseTempName('.obj.upload-4194000-1764400000000'), { base: 'obj', tag: 'upload', pid: 4194000 }, 'pid + milliseconds (older builds)');
  t.same(parseTempName('.last-backup.json.tmp-123'), { base: 'last-backup.json', tag: 'tmp', pid: 123 }, 'pid alone (writeFileAtomic)');
  for (const other of ['state.json', '.state.json', '.f.upload-x1', 'f.tmp-12', '.f.tmp-12-UPPER']) t.equal(parseTempName(other), null, other);
});
