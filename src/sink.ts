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
  return { sink: store, via: 'store', description: `opened data dir ${dir}`, close: () => store.close() };
}
