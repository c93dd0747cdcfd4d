#!/usr/bin/env node
'use strict';
// A hot backup shares the machine with a running node: give up CPU before
// loading anything (the archive step then drops to SCHED_IDLE, src/backup.ts).
const argv = process.argv.slice(2);
if (argv.includes('backup') && argv.includes('create') && argv.includes('--hot') && !argv.includes('--foreground')) {
  try {
    require('os').setPriority(19);
  } catch {
    /* not allowed: keep the priority */
  }
}
require('../dist/src/cli/main.js').main().catch((err) => {
  process.stderr.write(`guts-node: GUTS_INTERNAL: ${err && err.stack ? err.stack : err}\n`);
  process.exitCode = 2;
});
