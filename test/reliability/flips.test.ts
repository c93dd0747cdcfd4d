// Random single-byte flips in real archives made by `backup create`, in each
// format. With the SHA-256 sidecar every flip must be detected (verify says
// INVALID, restore refuses and leaves the target as it was). Without the
// sidecar, the content checks (tar header checksums, zstd frame checksums,
// gzip CRC32, per-file XXH3-128, GUTS-INDEX / MANIFEST.json rules) catch every
// flip except in the bytes no content check covers — by design, and harmless:
//   - .tar: the zero padding after each entry's data (up to 511 bytes) is
//     skipped by the reader; no file data or metadata lives there.
//   - .tar.zst: the window descriptor of a frame only tells the decoder how
//     much memory to reserve; a flip that still leaves a sufficient window
//     decodes the very same bytes (and the frame checksum matches).
//   - .tar.gz: the member header's FTEXT flag, MTIME, XFL and OS bytes are
//     informational, and the unused bits after the final deflate block's end
//     code are ignored by inflate.
// Every flip that the content checks miss must lie in one of these regions,
// and restoring such an archive must give byte-identical files.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { verifyBackup } from '../../src/backup-verify';
import { GutsError } from '../../src/errors';
import { cli } from '../fixtures/cli';
import { archiveRegions, createArchive, FORMATS, prng, Region, regionAt, runSeed, seedStore, stagingLeft, treeState, UNPROTECTED } from './helpers';

const SEED = runSeed(20251126);
const FLIPS = 120; // per format
const BULK = new Set(['tar data', 'zstd block data', 'deflate data']);

interface Flip {
  off: number;
  xor: number;
  region: Region;
}

function flipAt(file: string, off: number, xor: number): () => void {
  const fd = fs.openSync(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, off);
    const orig = b[0];
    b[0] ^= xor;
    fs.writeSync(fd, b, 0, 1, off);
    return () => {
      const w = fs.openSync(file, 'r+');
      fs.writeSync(w, Buffer.from([orig]), 0, 1, off);
      fs.closeSync(w);
    };
  } finally {
    fs.closeSync(fd);
  }
}

/** Half the offsets uniform over the file, half aimed at the small structural regions. */
function chooseFlips(size: number, regions: Region[], rnd: ReturnType<typeof prng>): Flip[] {
  const kinds = [...new Set(regions.filter((r) => !BULK.has(r.what)).map((r) => r.what))];
  const flips: Flip[] = [];
  for (let i = 0; i < FLIPS; i++) {
    let off: number;
    if (i % 2 === 0) {
      off = rnd.int(size);
    } else {
      const kind = rnd.pick(kinds);
      const r = rnd.pick(regions.filter((x) => x.what === kind));
      off = r.start + rnd.int(r.end - r.start);
    }
    flips.push({ off, xor: 1 + rnd.int(255), region: regionAt(regions, off) });
  }
  return flips;
}

t.test('single-byte flips in real archives', async (t) => {
  const dir = t.testdir();
  const dataDir = path.join(dir, 'data');
  seedStore(dataDir, '8MiB');
  const rnd = prng(SEED);

  for (const format of FORMATS) {
    await t.test(format, async (t) => {
      const file = path.join(dir, `guts.${format}`);
      createArchive(dataDir, file);
      const sidecar = `${file}.sha256`;
      const size = fs.statSync(file).size;
      const flips = chooseFlips(size, archiveRegions(file), rnd);

      // the reference restore: what every harmless flip must reproduce
      const target = path.join(dir, `target-${format.replace('.', '-')}`);
      const ok = cli(['backup', 'restore', file, '--target', target]);
      t.equal(ok.status, 0, ok.status ? ok.stderr : 'reference restore');
      const reference = treeState(target);

      let detected = 0;
      let contentChecked = 0;
      let contentDetected = 0;
      const missed: Flip[] = [];
      for (const f of flips) {
        const undo = flipAt(file, f.off, f.xor);
        try {
          const v = await verifyBackup({ file, threads: 2 });
          if (v.status === 'INVALID') detected++;
          else t.fail(`${format}: flip at ${f.off} (^0x${f.xor.toString(16)}, ${f.region.what} of ${f.region.of}) not detected with the sidecar`);
          // the same flip without the sidecar: content checks only
          fs.renameSync(sidecar, `${sidecar}.off`);
          try {
            contentChecked++;
            // a flip in the compression magic leaves no trace of a backup without the sidecar: GUTS_NOT_ARCHIVE
            const c = await verifyBackup({ file, threads: 2 }).catch((e: GutsError) => {
              if (e.code !== 'GUTS_NOT_ARCHIVE') throw e;
              return { status: 'INVALID' };
            });
            if (c.status === 'INVALID') contentDetected++;
            else missed.push(f);
          } finally {
            fs.renameSync(`${sidecar}.off`, sidecar);
          }
        } finally {
          undo();
        }
      }
      t.comment(`${format}: flips detected: ${detected}/${flips.length}`);
      t.equal(detected, flips.length, 'every flip detected with the sidecar');
      const where = [...new Set(missed.map((f) => f.region.what))].join(', ') || 'none';
      t.comment(`${format}: flips detected by content checks alone (no sidecar): ${contentDetected}/${contentChecked}; undetected ones in: ${where}`);
      for (const f of missed) t.ok(UNPROTECTED.has(f.region.what), `undetected flip at ${f.off} lies in an unprotected region (${f.region.what})`);

      // an undetected flip is harmless: restoring it gives the same files
      for (const f of missed.slice(0, 2)) {
        const undo = flipAt(file, f.off, f.xor);
        fs.renameSync(sidecar, `${sidecar}.off`);
        try {
          const other = path.join(dir, 'harmless');
          const r = cli(['backup', 'restore', file, '--target', other]);
          t.equal(r.status, 0, r.status ? r.stderr : 'restores without the sidecar');
          t.same(treeState(other), reference, `flip in ${f.region.what} restores identical files`);
          fs.rmSync(other, { recursive: true });
        } finally {
          fs.renameSync(`${sidecar}.off`, sidecar);
          undo();
        }
      }

      // the CLI: exit 1 and the INVALID block
      for (const f of flips.slice(0, 4)) {
        const undo = flipAt(file, f.off, f.xor);
        try {
          const r = cli(['backup', 'verify', file]);
          t.equal(r.status, 1, `backup verify exit 1 (flip in ${f.region.what})`);
          t.match(r.stdout, /^Status: INVALID$/m);
        } finally {
          undo();
        }
      }

      // restore refuses every flipped archive and leaves the target as it was
      // (undetected-by-content flips first: only the sidecar stops those)
      const sample = [...missed.slice(0, 2), ...flips.filter((f) => !missed.includes(f)).slice(0, 7 - Math.min(2, missed.length))];
      let refused = 0;
      for (const f of sample) {
        const undo = flipAt(file, f.off, f.xor);
        try {
          const r = cli(['backup', 'restore', file, '--target', target, '--force']);
          if ((r.status === 1 || r.status === 2) && /GUTS_(CORRUPT|UNSAFE_PATH)/.test(r.stderr)) refused++;
          else t.fail(`restore of flip at ${f.off} (${f.region.what}): exit ${r.status} ${r.stderr}`);
        } finally {
          undo();
        }
        t.same(treeState(target), reference, 'target untouched');
        t.same(stagingLeft(dir), [], 'staging dir removed');
      }
      t.comment(`${format}: flipped archives refused by restore: ${refused}/${sample.length}`);
      t.equal(refused, sample.length);
    });
  }
});
