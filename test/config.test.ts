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

t.test('wal.* keys are validated', async (t) => {
  const dir = t.testdir({});
  const file = path.join(dir, 'config.yaml');
  setConfigValue(file, 'wal.archive_timeout', '1s');
  setConfigValue(file, 'wal.segment_size', '16MiB');
  setConfigValue(file, 'wal.max_pending', '64KiB');
  setConfigValue(file, 'wal.archive_command', 'cp %p /archive/%f && echo 100%%');
  const cfg = loadConfig(file).config;
  t.same([cfg.wal.archive_timeout, cfg.wal.segment_size, cfg.wal.max_pending], ['1s', '16MiB', '64KiB']);
  t.throws(() => setConfigValue(file, 'wal.archive_command', 'cp %x /archive'), { code: 'GUTS_INVALID_CONFIG' }, 'unknown placeholder');
  t.throws(() => setConfigValue(file, 'wal.archive_timeout', '10ms'), { code: 'GUTS_INVALID_CONFIG' });
  t.throws(() => setConfigValue(file, 'wal.archive_timeout', 'soon'), { code: 'GUTS_INVALID_CONFIG' });
  t.throws(() => setConfigValue(file, 'wal.segment_size', '1KiB'), { code: 'GUTS_INVALID_CONFIG' });
  t.throws(() => setConfigValue(file, 'wal.segment_size', '2GiB'), { code: 'GUTS_INVALID_CONFIG' });
  t.throws(() => setConfigValue(file, 'wal.max_pending', 'lots'), { code: 'GUTS_INVALID_CONFIG' });
  t.equal(loadConfig(file).config.wal.max_pending, '64KiB', 'a refused value leaves the file as it was');
  fs.writeFileSync(file, 'wal:\n  segment_size: 12\n');
  t.throws(() => loadConfig(file), { code: 'GUTS_INVALID_CONFIG' }, 'checked at load too');
});
