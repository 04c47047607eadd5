// Files: the member's config and secret files (and the Java agent its JVM
// loads for metrics, where it has one) written into its volume before its
// container starts, each atomically (fsynced, then renamed), owned by the
// member's user; secret files readable by that user only. They stay with the
// volume when the member stops.
import fs from 'node:fs';
import path from 'node:path';
import { readSecrets } from '../../catalog/records.ts';
import { fillSecrets, ownerOf, type MemberSpec } from '../members.ts';
import type { MemberStep, NodeContext } from './step.ts';

/**
 * The service's secrets, from this node's replica (they were written with the service, before any member),
 * and those it borrows from the services it needs (which cannot be deleted while it exists).
 */
function secrets(node: NodeContext, spec: MemberSpec): Record<string, string> {
  if (!spec.secretFiles?.length) return {};
  const of = (service: string) => {
    const s = readSecrets(node.db.store, service);
    if (!s) throw new Error(`the secrets of service ${service} are missing from the controldb`);
    return { ...s.value };
  };
  const out = of(spec.service);
  for (const b of spec.borrowedSecrets ?? []) {
    const value = of(b.service)[b.secret];
    if (value === undefined) throw new Error(`service ${b.service} has no secret named ${b.secret}`);
    out[b.as] = value;
  }
  return out;
}

function writeFiles(volumeDir: string, spec: MemberSpec, filled: Record<string, string>): void {
  const owner = ownerOf(spec);
  const files = [
    ...(spec.configFiles ?? []).map((f) => ({ path: f.path, content: f.content, mode: f.mode ?? 0o644 })),
    ...(spec.secretFiles ?? []).map((f) => ({ path: f.path, content: fillSecrets(f.template, filled), mode: 0o600 })),
  ];
  for (const f of files) writeVolumeFile(path.join(volumeDir, f.path), f.content, f.mode, owner);
}

/** One file into a member's volume: written beside, fsynced, renamed over, with its mode and owner from the start. */
export function writeVolumeFile(file: string, content: string | Buffer, mode: number, owner: { uid: number; gid: number } | undefined): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp`;
  fs.rmSync(tmp, { force: true });
  const fd = fs.openSync(tmp, 'w', mode);
  try {
    fs.writeFileSync(fd, content);
    fs.fchmodSync(fd, mode);
    if (owner) fs.fchownSync(fd, owner.uid, owner.gid);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

/** The Java agent the member's JVM loads for its metrics, from the node's copy, unless the volume has that very file already. */
async function writeJavaAgent(node: NodeContext, volumeDir: string, spec: MemberSpec): Promise<void> {
  const agent = spec.metrics?.javaAgent;
  if (!agent || !node.javaAgents) return;
  const from = await node.javaAgents.path(agent);
  const to = path.join(volumeDir, agent.path);
  if (fs.existsSync(to) && fs.statSync(to).size === fs.statSync(from).size) return;
  writeVolumeFile(to, fs.readFileSync(from), 0o644, ownerOf(spec));
}

export const files: MemberStep = {
  name: 'files',
  async start(node, run) {
    if (!run.volumeDir) return true;
    writeFiles(run.volumeDir, run.spec, secrets(node, run.spec));
    await writeJavaAgent(node, run.volumeDir, run.spec);
    return true;
  },
};
