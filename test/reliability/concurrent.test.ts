// Concurrent `backup create` runs to the same output (2 to 4 at once, five
// rounds): at least one wins (a run that starts after a winner finished
// replaces its archive: rotation by name), every other one fails with
// GUTS_LOCKED (exit 3: a winner's partial is locked) or GUTS_EXISTS (exit 2:
// a winner committed after this run found the name free), and the archive
// left verifies with its sidecar (the pair is committed under the lock). The rounds run
// against a live node (hot backups: checkpoints come from the node, so the
// runs contend for the output file only); a last round against the stopped
// store, where losers may also meet the store's lock (GUTS_LOCKED).
import t from 'tap';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { verifyBackup } from '../../src/backup-verify';
import { BIN } from '../fixtures/cli';
import { startNode, stopAtEnd } from '../lib/node-proc';
import { checkpointsLeft, prng, runSeed, seedStore } from './helpers';

const SEED = runSeed(4242);
const ROUNDS = 5;

interface Run {
  code: number | null;
  stderr: string;
}

function create(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, GUTS_CONFIG: '/dev/null' } });
    let stderr = '';
    p.stderr!.on('data', (d) => (stderr += d));
    p.on('close', (code) => resolve({ code, stderr }));
  });
}

t.test('concurrent creates of the same output', async (t) => {
  const dir = t.testdir({ out: {} });
  const dataDir = path.join(dir, 'data');
  seedStore(dataDir, '8MiB');
  const rnd = prng(SEED);
  let good = 0;
  let node = stopAtEnd(t, await startNode(dataDir));
  for (let round = 0; round <= ROUNDS; round++) {
    if (round === ROUNDS) {
      await node.stop(); // the last round: the CLI runs open the store themselves
      node = null!;
    }
    const n = 2 + rnd.int(3);
    const format = (['tar.zst', 'tar.gz', 'tar'] as const)[round % 3];
    const out = path.join(dir, 'out', `r${round}.${format}`);
    const runs = await Promise.all(Array.from({ length: n }, () => create(['--data-dir', dataDir, 'backup', 'create', '--hot', '--output', out])));
    const winners = runs.filter((r) => r.code === 0);
    const losers = runs.filter((r) => r.code !== 0);
    t.ok(winners.length >= 1, `round ${round} (${n} at once, ${format}): ${winners.length} won`);
    for (const l of losers) {
      const expected = (l.code === 3 && /^guts-node: GUTS_LOCKED: /.test(l.stderr)) || (l.code === 2 && /^guts-node: GUTS_EXISTS: /.test(l.stderr));
      t.ok(expected, `loser: GUTS_LOCKED (3) or GUTS_EXISTS (2), got ${l.code}: ${l.stderr.trim()}`);
    }
    const v = await verifyBackup({ file: out });
    t.equal(v.status, 'VALID', 'the archive left verifies');
    t.equal(v.sidecar, 'ok', 'with its sidecar');
    t.same(fs.readdirSync(path.join(dir, 'out')).filter((f) => f.startsWith(`r${round}.`)).sort(), [`r${round}.${format}`, `r${round}.${format}.sha256`], 'no partial left');
    if (!node) t.same(checkpointsLeft(dataDir), [], 'no checkpoint left');
    t.comment(`round ${round}: ${n} concurrent creates, losers: ${losers.map((l) => l.stderr.trim().replace(/^guts-node: /, "").slice(0, 40)).join(" | ")}`);
    if (winners.length >= 1 && v.status === 'VALID' && v.sidecar === 'ok') good++;
  }
  t.comment(`concurrent create rounds with a winner and a valid archive and sidecar: ${good}/${ROUNDS + 1}`);
  t.equal(good, ROUNDS + 1);
});
