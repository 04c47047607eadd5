// `firecampd snapshot restore`: start a new one-node cluster from a snapshot
// image, as etcd does. The data (keys, revisions, leases) come back; the old
// cluster's membership does not.
import fs from 'node:fs';
import path from 'node:path';
import { openDataDir } from '../datadir.ts';
import { UserError } from '../errors.ts';
import { RaftStorage } from '../raft/storage.ts';
import { NODES_PREFIX } from './membership.ts';
import { KvStore } from './store.ts';

export interface RestoreResult {
  dataDir: string;
  nodeId: string;
  revision: number;
  index: number;
}

export function restoreSnapshot(file: string, dataDir: string): RestoreResult {
  if (fs.existsSync(path.join(dataDir, 'raft.db'))) {
    throw new UserError(`data dir ${dataDir} already holds a node; restore into a new, empty directory`);
  }
  let image: Buffer;
  try {
    image = fs.readFileSync(file);
  } catch (err) {
    throw new UserError(`cannot read snapshot ${file}: ${(err as Error).message}`);
  }
  if (image.subarray(0, 16).toString('latin1') !== 'SQLite format 3\u0000') {
    throw new UserError(`${file} is not a firecampd snapshot (not a SQLite image)`);
  }
  const dir = openDataDir(dataDir);
  try {
    const store = new KvStore(path.join(dataDir, 'state.db'));
    store.restore(image);
    const index = store.appliedIndex();
    const term = store.appliedTerm();
    // The old nodes are not members of the new cluster; the new node records itself when it starts.
    store.deletePrefix(NODES_PREFIX);
    const data = store.snapshot();
    const revision = store.revision();
    store.close();
    const storage = RaftStorage.open(dataDir);
    const conf = { voters: [dir.nodeId], learners: [] };
    storage.compact({ meta: { index, term, conf }, data });
    storage.save({ entries: [], hardState: { term, vote: null, commit: index } });
    storage.close();
    return { dataDir, nodeId: dir.nodeId, revision, index };
  } finally {
    dir.lock.close();
  }
}
