// A member's life on a node is a list of steps, run forward to start it and
// backward to stop it, as Nomad's task runner runs its hooks. Each step's
// start and stop undo each other, and each is idempotent: a start that
// stopped halfway (a failure, a lease that lapsed, a restart of the agent)
// runs again from the first step, and a stop may run after any prefix of the
// starts, or twice.
import type { ControlDb } from '../../controldb/controldb.ts';
import type { Logger } from '../../log.ts';
import type { Containers } from '../docker.ts';
import type { NodeFirewall } from '../../firewall/firewall.ts';
import type { HostsFile } from '../hosts-file.ts';
import type { LogKeeper } from '../logs/keeper.ts';
import type { JavaAgents } from '../java-agents.ts';
import type { NodeLease } from '../lease.ts';
import type { MemberSpec, MemberStatus } from '../members.ts';
import type { DnsProvider, IpProvider, VolumeProvider } from '../providers/types.ts';

/** The node's store and providers, as the daemon gives them to its agent. */
export interface NodeProviders {
  db: ControlDb;
  nodeId: string;
  /** This node's address, for members without a static IP. */
  nodeIp: string;
  containers: Containers;
  volumes: VolumeProvider;
  ips: IpProvider;
  dns: DnsProvider;
  lease: NodeLease;
  log: Logger;
  /** The cluster's names for members' /etc/hosts. */
  hosts?: HostsFile;
  /** The node's nftables table of services' walls; without it (unit tests of the agent) members run unwalled. */
  firewall?: NodeFirewall;
  /** Keeps each member's output on its volume (src/agent/logs/); without it, only Docker keeps it. */
  logs?: LogKeeper;
  /** The jars members' JVMs load for their metrics (src/agent/java-agents.ts); without it, none is written. */
  javaAgents?: JavaAgents;
}

/** What the steps work with: the node's providers and the agent's few shared services. */
export interface NodeContext extends NodeProviders {
  /** How long a member gets to stop cleanly when it moves. */
  stopGraceSeconds: number;
  /** Write the member's status for the catalog and `service get`. */
  report(spec: MemberSpec, state: MemberStatus['state'], message?: string, container?: string, health?: MemberStatus['health']): Promise<void>;
  /** Volume attachments one at a time: two `losetup --find` at once may pick the same free device. */
  serialize<T>(fn: () => Promise<T>): Promise<T>;
}

/** One member on this node, as far as its steps have brought it. */
export interface MemberRun {
  spec: MemberSpec;
  volumeDir?: string;
  journalDir?: string;
  container?: string;
  /** As last reported. */
  health?: MemberStatus['health'];
  /** Docker's restarts of its container after a crash, as last seen. */
  crashRestarts?: number;
  /** When the certificate it serves ends (the certificate step), for its status. */
  certificateEnds?: string;
}

/**
 * How a stop runs. Online, the controldb is in reach and the stop is the agent's choice (the member moved, went, or
 * restarts at a new epoch). Offline, the node is fenced: only what is on the node is undone, at once, and whatever
 * fails is left for the next holder (which takes volumes and addresses over by epoch).
 */
export interface StopMode {
  online: boolean;
  why: string;
}

export interface MemberStep {
  /** Names the step in logs and in the member's status when it fails. */
  readonly name: string;
  /** Bring the member this step forward. False: not now (the claim is held elsewhere, the image is on its way); the start ends here and runs again later. */
  start(node: NodeContext, run: MemberRun): Promise<boolean>;
  /** Undo start. */
  stop?(node: NodeContext, run: MemberRun, mode: StopMode): Promise<void>;
}
