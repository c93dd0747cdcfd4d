// contrib/: systemd units verified by systemd-analyze (when this machine has
// it), the cron file's lines, the alert rules parsed as YAML, and every metric
// an alert names actually exported somewhere in src/.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as YAML from 'yaml';

const ROOT = path.resolve(__dirname, '..');
const C = path.join(ROOT, 'contrib');

function srcText(): string {
  let out = '';
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.ts$/.test(e.name)) out += fs.readFileSync(p, 'utf8');
    }
  };
  walk(path.join(ROOT, 'src'));
  return out;
}

t.test('systemd units', async (t) => {
  const service = fs.readFileSync(path.join(C, 'systemd/guts-backup.service'), 'utf8');
  const timer = fs.readFileSync(path.join(C, 'systemd/guts-backup.timer'), 'utf8');
  t.match(service, /^ExecStart=\/usr\/local\/bin\/guts-node --config \/etc\/guts\/config\.yaml backup run$/m, 'runs backup run with the config');
  t.match(service, /^Type=oneshot$/m);
  t.match(timer, /^OnCalendar=\*-\*-\* 02:00:00$/m, "the guide's schedule");
  t.match(timer, /^Persistent=true$/m);
  t.match(timer, /^RandomizedDelaySec=30min$/m);
  const which = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
  if (which.error) {
    t.skip('systemd-analyze is not installed here');
    return;
  }
  // the installed binary's path replaced by this checkout's, which exists here
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'guts-units-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'guts-backup.service'), service.replace('/usr/local/bin/guts-node', path.join(ROOT, 'bin/guts-node.js')));
  fs.writeFileSync(path.join(dir, 'guts-backup.timer'), timer);
  const r = spawnSync('systemd-analyze', ['verify', path.join(dir, 'guts-backup.service'), path.join(dir, 'guts-backup.timer')], { encoding: 'utf8' });
  t.equal(r.status, 0, `systemd-analyze verify: ${r.stderr}`);
  t.equal(r.stderr.trim(), '', 'no warnings');
});

t.test('cron file', async (t) => {
  const lines = fs.readFileSync(path.join(C, 'cron/guts-backup'), 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));
  t.equal(lines.length, 2);
  for (const l of lines) t.match(l, /^(\S+ ){5}root /, 'five time fields and a user (cron.d format)');
  t.match(lines[0], /^0 2 \* \* \* root .*guts-node --config \/etc\/guts\/config\.yaml backup run/);
  t.equal(lines[1], '0 * * * * root guts-node backup create --consensus-only --output /var/backups/guts/consensus-$(date +\\%H).tar.gz', "the guide's hourly line as written");
});

t.test('alert rules', async (t) => {
  const doc = YAML.parse(fs.readFileSync(path.join(C, 'prometheus/guts-backup.rules.yml'), 'utf8'));
  const rules = (doc.groups as Array<{ rules: Array<{ alert: string; expr: string; labels?: Record<string, string> }> }>).flatMap((g) => g.rules);
  const byName = new Map(rules.map((r) => [r.alert, r]));
  t.same([...byName.keys()].sort(), ['GutsBackupFailed', 'GutsBackupMissing', 'GutsBackupVerifyFailed', 'GutsWalArchiveFailing', 'GutsWalArchiveLagging', 'GutsWalBacklog'].sort());
  t.equal(byName.get('GutsBackupMissing')!.expr, 'time() - guts_last_backup_timestamp > 86400', "GutsBackupMissing as in the guide (the YAML comment aside)");
  const src = srcText();
  const names = new Set(rules.flatMap((r) => r.expr.match(/\bguts_[a-z0-9_]+/g) ?? []));
  t.ok(names.size >= 6, [...names].join(' '));
  for (const n of names) t.ok(src.includes(`'${n}'`) || src.includes(`"${n}"`) || new RegExp(`\\b${n}\\b`).test(src), `${n} is exported by src/`);
  for (const r of rules) t.ok(r.labels?.severity, `${r.alert} has a severity`);
});
