// firecampd snapshot save|restore
import fs from 'node:fs';
import type { Argv } from 'yargs';
import { UserError } from '../errors.ts';
import { client, print, type GlobalArgs } from './output.ts';

export function snapshotCommands(y: Argv): Argv {
  return y
    .command(
      'save <file>',
      "save the controldb's state to FILE",
      (c) => c.positional('file', { type: 'string', demandOption: true }),
      async (a: GlobalArgs) => {
        const image = await (await client(a)).download('/v1/snapshot');
        const file = String(a.file);
        const tmp = `${file}.part`;
        fs.writeFileSync(tmp, image, { mode: 0o600 });
        fs.renameSync(tmp, file);
        print(a, { file, bytes: image.length }, () => `saved ${image.length} bytes to ${file}`);
      },
    )
    .command(
      'restore <file>',
      'make a new one-node cluster from a saved snapshot in --data-dir (then start firecampd on it)',
      (c) => c.positional('file', { type: 'string', demandOption: true }),
      async (a: GlobalArgs) => {
        if (!a.dataDir) throw new UserError('restore needs --data-dir: a new, empty directory for the restored node');
        const { restoreSnapshot } = await import('../controldb/restore.ts');
        const r = restoreSnapshot(String(a.file), String(a.dataDir));
        print(a, r, () => `restored revision ${r.revision} into ${r.dataDir} as node ${r.nodeId}; start it with: firecampd --data-dir ${r.dataDir}`);
      },
    )
    .demandCommand(1, 'name a snapshot command: save or restore');
}
