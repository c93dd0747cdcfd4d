import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { loadConfig, setConfigValue } from '../src/config';

t.test('config set keeps comments and validates', async (t) => {
  const dir = t.testdir({ 'config.yaml': '# my node\napi:\n  addr: "0.0.0.0:8080" # public\nstorage:\n  data_dir: /srv/guts\n' });
  const file = path.join(dir, 'config.yaml');
  setConfigValue(file, 'wal.archive_command', 'aws s3 cp %f s3://guts-wal/%p');
  const text = fs.readFileSync(file, 'utf8');
  t.match(text, /# my node/);
  t.match(text, /# public/);
  const cfg = loadConfig(file).config;
  t.equal(cfg.wal.archive_command, 'aws s3 cp %f s3://guts-wal/%p');
  t.equal(cfg.storage.data_dir, '/srv/guts');
  t.throws(() => setConfigValue(file, 'wal.nope', 'x'), { code: 'GUTS_INVALID_ARGUMENT' });
  t.throws(() => setConfigValue(file, 'api.addr', 'not an addr'), { code: 'GUTS_INVALID_CONFIG' });
});
