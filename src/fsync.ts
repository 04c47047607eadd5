// Putting a file in place so that a crash leaves the old one or the new one,
// whole: the new file's data on disk, then the rename, then the directory's
// entry on disk.
import fs from 'node:fs';
import path from 'node:path';

/** fsync a file or a directory (a directory: its entries). */
export function fsyncPath(p: string): void {
  const fd = fs.openSync(p, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Rename the fully written `tmp` to `file`, durably. */
export function commitFile(tmp: string, file: string): void {
  fsyncPath(tmp);
  fs.renameSync(tmp, file);
  fsyncPath(path.dirname(file));
}
