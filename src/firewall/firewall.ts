// The node's firewall: one nftables table of firecampd's own, holding the
// walls of the services with members on this node (walls.ts), made again
// whenever the services, members or nodes change. It never touches another
// table. The table outlives the daemon, so members stay walled while it
// restarts; at start it is made again from the controldb.
import type { ControlDb } from '../controldb/controldb.ts';
import { NODES_PREFIX } from '../controldb/membership.ts';
import { errorMessage } from '../errors.ts';
import { run } from '../exec.ts';
import type { Logger } from '../log.ts';
import { MEMBERS_PREFIX, type MemberSpec } from '../agent/members.ts';
import { SERVICES_PREFIX } from '../catalog/types.ts';
import { renderRuleset } from './ruleset.ts';
import { wallsOn } from './walls.ts';

/** The table's name: one per node id, so that nodes sharing a network namespace (tests, a laptop) keep their own. */
export const tableName = (nodeId: string) => `firecampd_${nodeId.replace(/[^a-zA-Z0-9_]/g, '_')}`;

/** Applies an nft script as one transaction; throws with nft's words. */
export type NftApply = (script: string) => Promise<void>;
export const nftApply: NftApply = async (script) => {
  await run('nft', ['-f', '-'], { input: script });
};

export interface FirewallState {
  ok: boolean;
  /** What went wrong the last time the table was made, and what to do. */
  error?: string;
  /** The services walled on this node. */
  services: string[];
}

export class NodeFirewall {
  private applied: string | null = null;
  private state: FirewallState = { ok: true, services: [] };
  private readonly held = new Map<string, MemberSpec>();
  private cancels: (() => void)[] = [];
  private syncing: Promise<void> = Promise.resolve();
  private dirty = false;

  readonly table: string;

  constructor(private readonly o: { db: ControlDb; nodeId: string; log: Logger; apply?: NftApply }) {
    this.table = tableName(o.nodeId);
  }

  start(): Promise<void> {
    this.cancels = [SERVICES_PREFIX, MEMBERS_PREFIX, NODES_PREFIX].map((p) => this.o.db.watch(p, true, 0, () => void this.sync()));
    return this.sync();
  }

  stop(): void {
    for (const c of this.cancels) c();
    this.cancels = [];
  }

  status(): FirewallState {
    return this.state;
  }

  /**
   * For the member's firewall step: the table walls `spec`'s service on this node. Throws when the table cannot be
   * made (the member must not start unwalled). Idempotent.
   */
  async guard(spec: MemberSpec): Promise<void> {
    this.held.set(`${spec.service}/${spec.name}`, spec);
    await this.sync();
    if (!this.state.ok) throw new Error(this.state.error);
  }

  /** The member has stopped here: its wall goes unless the member is (again) assigned here. */
  async release(spec: MemberSpec): Promise<void> {
    this.held.delete(`${spec.service}/${spec.name}`);
    await this.sync();
  }

  /** Make the table again from the store; calls that arrive meanwhile are folded into one more run after it. */
  sync(): Promise<void> {
    this.dirty = true;
    this.syncing = this.syncing.then(async () => {
      if (!this.dirty) return;
      this.dirty = false;
      await this.syncOnce();
    });
    return this.syncing;
  }

  private async syncOnce(): Promise<void> {
    let services: string[] = [];
    try {
      const walls = wallsOn(this.o.db.store, this.o.nodeId, [...this.held.values()]);
      services = walls.map((w) => w.service);
      const script = renderRuleset(this.table, walls);
      if (script === this.applied && this.state.ok) return;
      await (this.o.apply ?? nftApply)(script);
      this.applied = script;
      if (!this.state.ok) this.o.log.info({ table: this.table }, 'the firewall table is set again');
      this.state = { ok: true, services };
    } catch (err) {
      const why = errorMessage(err);
      const error = /not installed/.test(why)
        ? 'nft is not installed: install nftables (apt-get install nftables); members cannot run on this node without their walls'
        : `could not set the firewall table ${this.table}: ${why}`;
      if (this.state.error !== error) this.o.log.error({ err: why }, 'the firewall table could not be set: members that need it do not start here');
      this.state = { ok: false, error, services };
    }
  }
}
