// s3:// arguments of backup create / verify / restore: the location and the
// streamed archive source (src/location/backup-stream.ts).
import { Command } from 'commander';

import { archiveSource, ArchiveSource } from '../location/backup-stream';
import { isRemote, Location, splitUrl } from '../location';
import { context } from './context';

/** For an s3:// file argument: its location (close it when done) and archive source; null for a local file. */
export async function remoteSource(file: string, cmd: Command): Promise<{ source: ArchiveSource; location: Location } | null> {
  if (!isRemote(file)) return null;
  const { location, key } = splitUrl(file, context(cmd).loaded.config);
  try {
    return { source: await archiveSource(location, key), location };
  } catch (e) {
    location.close();
    throw e;
  }
}
