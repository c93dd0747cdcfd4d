// The baselines' transfer step, as `aws s3 cp` does it: `up FILE URL` (a
// multipart upload of a finished file) and `down URL FILE` (a download to a
// local file, with its .sha256 sidecar), through the same S3 location code,
// part size and parallelism as guts-node's streamed path: the comparison is
// about streaming, not about two different clients.
import * as fs from 'node:fs';
import { pipeline } from 'node:stream/promises';

import { splitUrl } from '../src/location';
import { streamParts } from '../src/location/backup-stream';

async function main(): Promise<void> {
  // up FILE URL [DATA_DIR]: with DATA_DIR, the part size and parallelism a streamed backup create of it uses
  const [cmd, a, b, dataDir] = process.argv.slice(2);
  if (cmd === 'up') {
    const { location, key } = splitUrl(b);
    const stats = { buffers: 0, parts: 0, inFlight: 0, bufferBytes: 0 };
    await location.upload(key, fs.createReadStream(a, { highWaterMark: 1 << 20 }), { overwrite: true, stats, ...(dataDir ? streamParts(dataDir) : {}) });
    // the bench reads the server's share (CompleteMultipartUpload) from here
    if (process.env.S3_TOOL_STATS) fs.writeFileSync(process.env.S3_TOOL_STATS, JSON.stringify(stats));
    await location.put(key + '.sha256', fs.readFileSync(a + '.sha256'), { overwrite: true });
    location.close();
  } else if (cmd === 'down') {
    const { location, key } = splitUrl(a);
    await pipeline(await location.read(key), fs.createWriteStream(b));
    fs.writeFileSync(b + '.sha256', (await location.get(key + '.sha256'))!.toString().replace(/ {2}.*$/m, `  ${b.split('/').pop()}`));
    location.close();
  } else {
    throw new Error('usage: s3-tool up FILE URL [DATA_DIR] | down URL FILE');
  }
}

main().catch((e) => {
  process.stderr.write(`s3-tool: ${(e as Error).message}\n`);
  process.exit(2);
});
