// Where import and dev seed write: the running node when one serves the data
// dir (the CLI never fights the node for the store lock), else the store
// opened directly. Callers say which one they used.
import * as path from 'node:path';

import { connectNode, ObjectSink } from './node-client';
import { GutsStore } from './store';

export interface OpenedSink {
  sink: ObjectSink;
  via: 'node' | 'store';
  /** "via running node (pid 123)" / "opened data dir /var/lib/guts" — for stderr */
  description: string;
  close(): Promise<void>;
}

export async function openSink(dataDir: string): Promise<OpenedSink> {
  const dir = path.resolve(dataDir);
  const node = await connectNode(dir);
  if (node) {
    let pid = '';
    try {
      pid = ` (pid ${(await node.status()).pid})`;
    } catch {
      // status is informative only
    }
    return { sink: node, via: 'node', description: `via running node${pid} serving ${dir}`, close: async () => node.close() };
  }
  const store = await GutsStore.open(dir);
  const close = async () => {
    // Flush memtables so the data dir is all SSTs: read-only opens (verify,
    // export) and backups then need no WAL replay of what was just written.
    try {
      await store.flush();
    } finally {
      await store.close();
    }
  };
  return { sink: store, via: 'store', description: `opened data dir ${dir}`, close };
}
