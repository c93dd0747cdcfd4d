#!/usr/bin/env node
'use strict';
require('../dist/src/cli/main.js').main().catch((err) => {
  process.stderr.write(`guts-node: GUTS_INTERNAL: ${err && err.stack ? err.stack : err}\n`);
  process.exitCode = 2;
});
