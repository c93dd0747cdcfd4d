// A real S3-compatible server (s3rver) on 127.0.0.1, run as its own process
// so tests and benchmarks can stop it mid-upload. Prints "listening PORT".
// argv: DIR BUCKET[,BUCKET...]; env S3_TEST_KEY_ID / S3_TEST_SECRET add a key pair.
'use strict';
const S3rver = require('s3rver');
const { DUMMY_ACCOUNT } = require('s3rver/lib/models/account');

const [dir, buckets] = process.argv.slice(2);
if (process.env.S3_TEST_KEY_ID) DUMMY_ACCOUNT.createKeyPair(process.env.S3_TEST_KEY_ID, process.env.S3_TEST_SECRET);
const server = new S3rver({
  address: '127.0.0.1',
  port: Number(process.env.S3_TEST_PORT || 0),
  silent: true,
  directory: dir,
  configureBuckets: (buckets || '').split(',').filter(Boolean).map((name) => ({ name })),
});
server.run().then(
  (addr) => process.stdout.write(`listening ${addr.port}\n`),
  (e) => {
    process.stderr.write(String(e && e.stack) + '\n');
    process.exit(1);
  },
);
process.on('SIGTERM', () => process.exit(0));
