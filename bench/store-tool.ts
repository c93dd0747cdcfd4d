// The store suite's worker process (bench/store-bench.ts), so every write is
// timed and its peak RSS measured in a process of its own:
//   copy SRC DST FORMAT [ROCKSDB_OPTIONS]   every object of store SRC into a new
//       store DST through putObjects batches of ~8 MiB (the node's batch API);
//       prints {objects, bytes, put_seconds (the writes and a flush, as a client
//       sees them), settled_seconds (until no compaction they caused is pending), sst_bytes}
//   import DST FORMAT REPO... [--options S] `guts-node import` of each git repo
//       into a new store DST (in process, same code); prints {objects, bytes, seconds, sst_bytes}
//   compact DIR FORMAT [--options S]       offline compact writing FORMAT; prints the result
//   settle DIR                             open DIR read-write until no compaction is pending (as a node would)
//   summary DIR                            the SST summary with its table-property parts
//   read DIR [GETS]                        read cost: a full scan of the objects (scanObjects
//       pages, store freshly opened), then GETS (default 20000) point lookups of
//       random ids, one at a time (store reopened: cold block cache); prints
//       {objects, scan_seconds, scan_cpu_seconds, gets, get_seconds, get_cpu_seconds}
//       (cpu: the process's user + system CPU, all threads: steadier than wall
//       time on a loaded machine)
// FORMAT: default | snappy (src/native.ts StoreOptions.format).
import * as fs from 'node:fs';
import * as path from 'node:path';

import { compactStore } from '../src/compact';
import { importGitRepo } from '../src/git';
import { native, TypeNames } from '../src/native';
import { GitObject, GutsStore } from '../src/store';

const BATCH_BYTES = 8 << 20;

async function sstBytes(dir: string): Promise<number> {
  const s = await GutsStore.open(dir, { readOnly: true, create: false });
  try {
    return (await native.sstSummary(s.native)).bytes;
  } finally {
    await s.close();
  }
}

/** Until RocksDB has no flush or compaction running or pending. */
async function settle(store: GutsStore): Promise<void> {
  while (native.backgroundWork(store.native) > 0) await new Promise((r) => setTimeout(r, 20));
}

async function copy(src: string, dst: string, format: 'default' | 'snappy', rocksdbOptions?: string): Promise<Record<string, number>> {
  fs.rmSync(dst, { recursive: true, force: true });
  const from = await GutsStore.open(src, { readOnly: true, create: false });
  const to = await GutsStore.open(dst, { format, rocksdbOptions });
  let objects = 0;
  let bytes = 0;
  let putNs = 0n;
  let settledNs = 0n;
  let batch: GitObject[] = [];
  let batchBytes = 0;
  const put = async () => {
    const t0 = process.hrtime.bigint();
    await to.putObjects(null, batch);
    putNs += process.hrtime.bigint() - t0;
    batch = [];
    batchBytes = 0;
  };
  try {
    // 16 cursors over the key space, read round-robin: every batch holds ids
    // from all over it, as an import's (git order) do; one sorted scan would
    // write non-overlapping SSTs and spare RocksDB the compactions a real
    // write path pays for.
    const cursors = Array.from({ length: 16 }, (_, k) => ({
      after: (k === 0 ? null : Buffer.concat([Buffer.from([k * 16 - 1]), Buffer.alloc(19, 0xff)])) as Buffer | null,
      end: k === 15 ? 256 : (k + 1) * 16,
      done: false,
    }));
    while (cursors.some((c) => !c.done)) {
      for (const c of cursors) {
        if (c.done) continue;
        const page = await from.native.scanObjects('', c.after, 64);
        for (const o of page) {
          if (o.id[0] >= c.end) {
            c.done = true;
            break;
          }
          batch.push({ type: TypeNames[o.type]!, data: o.data });
          batchBytes += o.data.length;
          objects++;
          bytes += o.data.length;
          if (batchBytes >= BATCH_BYTES) await put();
        }
        if (page.length < 64) c.done = true;
        else c.after = page[page.length - 1].id;
      }
    }
    if (batch.length) await put();
    const t0 = process.hrtime.bigint();
    await to.flush();
    putNs += process.hrtime.bigint() - t0;
    // the write run is also charged with the compactions it caused
    await settle(to);
    settledNs = putNs + (process.hrtime.bigint() - t0);
  } finally {
    await from.close();
    await to.close();
  }
  return { objects, bytes, put_seconds: Number(putNs) / 1e9, settled_seconds: Number(settledNs) / 1e9, sst_bytes: await sstBytes(dst) };
}

async function importRepos(dst: string, format: 'default' | 'snappy', repos: string[], rocksdbOptions?: string): Promise<Record<string, number>> {
  fs.rmSync(dst, { recursive: true, force: true });
  const to = await GutsStore.open(dst, { format, rocksdbOptions });
  let objects = 0;
  let bytes = 0;
  const t0 = process.hrtime.bigint();
  try {
    for (const r of repos) {
      const res = await importGitRepo(to, r, `corpus/${path.basename(r)}`);
      objects += res.objects;
      bytes += res.bytes;
    }
    await to.flush();
    await settle(to);
  } finally {
    await to.close();
  }
  return { objects, bytes, seconds: Number(process.hrtime.bigint() - t0) / 1e9, sst_bytes: await sstBytes(dst) };
}

async function readCost(dir: string, gets: number): Promise<Record<string, number>> {
  const ids: Buffer[] = [];
  let s = await GutsStore.open(dir, { readOnly: true, create: false });
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  try {
    let after: Buffer | null = null;
    for (;;) {
      const page = await s.native.scanObjects('', after, 256);
      for (const o of page) ids.push(o.id);
      if (page.length < 256) break;
      after = page[page.length - 1].id;
    }
  } finally {
    await s.close();
  }
  const scanNs = process.hrtime.bigint() - t0;
  const scanCpu = process.cpuUsage(c0);
  // a fixed pseudo-random order (same ids for every format of the same objects)
  let x = 12345;
  const pick = () => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0), ids[x % ids.length]);
  s = await GutsStore.open(dir, { readOnly: true, create: false });
  const c1 = process.cpuUsage();
  const t1 = process.hrtime.bigint();
  try {
    for (let i = 0; i < gets; i++) if (!(await s.native.getObject(pick()))) throw new Error('object missing');
  } finally {
    await s.close();
  }
  const getNs = process.hrtime.bigint() - t1;
  const getCpu = process.cpuUsage(c1);
  const cpu = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1e6;
  return {
    objects: ids.length,
    scan_seconds: Number(scanNs) / 1e9,
    scan_cpu_seconds: cpu(scanCpu),
    gets,
    get_seconds: Number(getNs) / 1e9,
    get_cpu_seconds: cpu(getCpu),
  };
}

async function main(): Promise<void> {
  // The stores this tool writes are measured as guts-node's own: every guts-node
  // command runs under umask 077 (src/cli/main.ts), so files come out 0600 and
  // the verify runs on them do not warn about group/other access.
  process.umask(0o077);
  const args = process.argv.slice(2);
  const opt = args.indexOf('--options');
  const rocksdbOptions = opt >= 0 ? args.splice(opt, 2)[1] : undefined;
  const [cmd, ...rest] = args;
  let out: unknown;
  if (cmd === 'copy') out = await copy(rest[0], rest[1], rest[2] as 'default' | 'snappy', rocksdbOptions);
  else if (cmd === 'import') out = await importRepos(rest[0], rest[1] as 'default' | 'snappy', rest.slice(2), rocksdbOptions);
  else if (cmd === 'settle') {
    // what a node does in its first seconds on a data dir an import closed
    // with compactions pending: open it read-write and let them finish
    const t0 = process.hrtime.bigint();
    const s = await GutsStore.open(rest[0], { create: false });
    try {
      await new Promise((r) => setTimeout(r, 200)); // RocksDB schedules the compactions an open finds due on its background threads: let it, before asking what is pending
      await settle(s);
    } finally {
      await s.close();
    }
    out = { settle_seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
  } else if (cmd === 'compact') {
    // in the given format: the snappy baseline stays snappy when compacted
    const s = await GutsStore.open(rest[0], { create: false, format: (rest[1] ?? 'default') as 'default' | 'snappy', rocksdbOptions });
    try {
      out = await compactStore(s);
    } finally {
      await s.close();
    }
  }
  else if (cmd === 'summary') {
    const s = await GutsStore.open(rest[0], { readOnly: true, create: false });
    try {
      out = await native.sstSummary(s.native);
    } finally {
      await s.close();
    }
  } else if (cmd === 'read') out = await readCost(rest[0], Number(rest[1] ?? 20000));
  else throw new Error('usage: store-tool copy SRC DST FORMAT | import DST FORMAT REPO... | compact DIR FORMAT [--options S] | settle DIR | summary DIR | read DIR [GETS]');
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
  process.stderr.write(`store-tool: ${(e as Error).message}\n`);
  process.exit(2);
});
