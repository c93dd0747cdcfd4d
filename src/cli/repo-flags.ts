// The repository flags and usage errors that `backup create` / `restore` /
// `prune` define whether or not --repo is given: kept apart from
// backup-repo.ts, which loads the repository code (and S3) and is required
// only when --repo is used.
import { CONFIG_KEYS } from '../config';
import { intOption } from './context';
import { UsageError } from './usage';

/** `--lock-wait SECONDS` of backup create --repo, prune --repo and run (0 = fail at once with exit 3). */
export const LOCK_WAIT_FLAG = '--lock-wait <seconds>';
export const LOCK_WAIT_HELP = `with --repo: wait up to this long for a conflicting repository lock (a create waits for a running prune, a prune for running creates), polling with backoff; 0 = exit 3 at once (default: backup.lock_wait, ${CONFIG_KEYS['backup.lock_wait'].default})`;
export const lockWaitOption = intOption('--lock-wait', 0, 86_400);

/** A usage error of `backup NAME` in the format of commander's own (src/cli/usage.ts). */
export function repoUsage(name: string, message: string): UsageError {
  return new UsageError(`backup ${name}: ${message}`, `Try 'guts-node backup ${name} --help'.`);
}
