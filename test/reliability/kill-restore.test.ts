// kill -9 at random moments of `backup restore --force` over an existing data
// dir. After each kill the target holds either exactly its old data (the
// kill came before the atomic exchange) or exactly the restored data (after
// it) — never a mix — and the next run removes the leftover staging dir and
// succeeds.
import t from 'tap';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { BIN, cli } from '../fixtures/cli';
import { sleep } from '../lib/node-proc';
import { createArchive, prng, runSeed, seedStore, stagingLeft, treeState } from './helpers';

const SEED = runSeed(31337);
const KILLS = 10;

t.test('kill -9 during backup restore', async (t) => {
  const dir = t.testdir();
  const source = path.join(dir, 'source');
  seedStore(source, '64MiB');
  const archive = path.join(dir, 'guts.tar.zst');
  createArchive(source, archive);
  // the old data dir the restore replaces: another, smaller store
  const old = path.join(dir, 'old');
  seedStore(old, '1MiB', 2);
  const oldState = treeState(old);
  const target = path.join(dir, 'target');
  const resetTarget = () => {
    fs.rmSync(target, { recursive: true, force: true });
    fs.cpSync(old, target, { recursive: true });
  };

  const reference = path.join(dir, 'reference');
  const t0 = Date.now();
  const r0 = cli(['backup', 'restore', archive, '--target', reference]);
  const duration = Date.now() - t0;
  t.equal(r0.status, 0, r0.status ? r0.stderr : `an uninterrupted restore takes ${duration} ms`);
  const newState = treeState(reference);
  fs.rmSync(reference, { recursive: true });

  const rnd = prng(SEED);
  let killed = 0;
  let ok = 0;
  let before = 0;
  let after = 0;
  // runs that finish before the kill shrink the window (the first, timed run
  // may have been slower than the later ones on a busy machine)
  let window = duration;
  for (let i = 0; i < KILLS * 4 && killed < KILLS; i++) {
    resetTarget();
    const delay = 20 + rnd.int(Math.max(50, window));
    const child = spawn(process.execPath, [BIN, 'backup', 'restore', archive, '--target', target, '--force'], {
      stdio: 'ignore',
      env: { ...process.env, GUTS_CONFIG: '/dev/null' },
    });
    const exited = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_code, signal) => r(signal)));
    await sleep(delay);
    child.kill('SIGKILL');
    if ((await exited) !== 'SIGKILL') {
      window = Math.floor(delay * 0.8); // finished before the kill
      continue;
    }
    killed++;
    const state = treeState(target);
    const untouched = JSON.stringify(state) === JSON.stringify(oldState);
    const complete = JSON.stringify(state) === JSON.stringify(newState);
    t.ok(untouched || complete, `kill after ${delay} ms: the target is exactly the old or exactly the restored data`);
    if (untouched) before++;
    else if (complete) after++;
    const next = cli(['backup', 'restore', archive, '--target', target, '--force']);
    t.equal(next.status, 0, next.status ? next.stderr : 'the next run succeeds');
    t.same(stagingLeft(dir), [], 'no staging dir left');
    const restored = treeState(target);
    t.same(restored, newState, 'the target holds the restored data');
    if ((untouched || complete) && next.status === 0 && stagingLeft(dir).length === 0 && JSON.stringify(restored) === JSON.stringify(newState)) ok++;
  }
  t.comment(`backup restore killed -9 and recovered cleanly: ${ok}/${killed} (target untouched: ${before}, already replaced whole: ${after})`);
  t.ok(killed >= KILLS, `at least ${KILLS} kills landed mid-run`);
  t.equal(ok, killed);
});
