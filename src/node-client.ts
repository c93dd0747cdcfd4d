// Client side of the node's admin socket (<data_dir>/admin.sock): the CLI talks
// to a running node through it instead of fighting it for the store lock.
// OWNER: daemon work (issue 6). Until then connectNode() reports "no node".
import { Counts, CheckpointInfo } from './native';
import { GitObject } from './store';

/** What import / dev seed write into: a GutsStore or a running node. */
export interface ObjectSink {
  putObjects(repo: string | null, objects: GitObject[]): Promise<{ ids: string[]; added: number }>;
  putRepo(repo: string, meta?: Record<string, unknown>): Promise<boolean>;
  setRefs(repo: string, refs: Array<{ name: string; target?: string; symbolic?: string; delete?: boolean }>): Promise<void>;
  putBlocks(blocks: Array<{ height: number; data: Buffer }>, finalized?: number): Promise<void>;
  counts(): Promise<Counts>;
}

export interface NodeCheckpoint {
  id: string;
  /** absolute dir holding db/ and/or consensus/ */
  dir: string;
  info: CheckpointInfo;
  counts: Counts;
  consensus: { blocks: number; finalizedHeight: number };
}

export interface NodeStatus {
  pid: number;
  dataDir: string;
  maintenance: boolean;
  maintenanceUntil?: string;
  counts: Counts;
  apiAddr: string;
}

export interface NodeClient extends ObjectSink {
  status(): Promise<NodeStatus>;
  checkpoint(which: { db: boolean; consensus: boolean }): Promise<NodeCheckpoint>;
  releaseCheckpoint(id: string): Promise<void>;
  maintenanceEnter(timeoutMs: number): Promise<{ until: string }>;
  maintenanceExit(): Promise<void>;
  recordBackup(info: { file: string; size_bytes: number; created: string; kind: string }): Promise<void>;
  close(): void;
}

/** A client for the node serving dataDir, or null when no node runs there. */
export async function connectNode(dataDir: string): Promise<NodeClient | null> {
  void dataDir;
  return null;
}
