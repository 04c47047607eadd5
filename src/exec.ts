// Running the system tools the agent needs (ip, arping, losetup, mount) with
// errors that name the command and what it said.
import { execFile } from 'node:child_process';

/** `input`: written to the command's stdin (nft -f -). */
export async function run(cmd: string, args: string[], opts: { okCodes?: number[]; input?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { encoding: 'utf8', timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number | string }).code ?? 1) : 0;
      if (err && !(typeof code === 'number' && opts.okCodes?.includes(code))) {
        const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not installed' : stderr.trim() || err.message;
        reject(new Error(`${cmd} ${args.join(' ')}: ${why}`));
        return;
      }
      resolve(stdout);
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}
