// s3:// arguments of backup create / verify / restore: the location and the
// streamed archive source (src/location/backup-stream.ts).
import { Command } from 'commander';

import type { ArchiveSource } from '../location/backup-stream';
import type { Location } from '../location';
import { context } from './context';

/** For an s3:// file argument: its location (close it when done) and archive source; null for a local file. */
export async function remoteSource(file: string, cmd: Command): Promise<{ source: ArchiveSource; location: Location } | null> {
  // a local file loads none of the location code
  if (!/^s3:\/\//.test(file)) return null;
  const { isRemote, splitUrl } = require('../location') as typeof import('../location');
  if (!isRemote(file)) return null;
  const { location, key } = splitUrl(file, context(cmd).loaded.config);
  try {
    const { archiveSource } = require('../location/backup-stream') as typeof import('../location/backup-stream');
    return { source: await archiveSource(location, key), location };
  } catch (e) {
    location.close();
    throw e;
  }
}
