// The small interfaces behind which the agent reaches volumes, addresses and
// names. One implementation per backend, chosen by configuration.

/** A member's volume: the same id wherever the member runs. */
export interface VolumeSpec {
  /** Cluster-unique, e.g. "cache-0-data". Letters, digits, "-", "_". */
  id: string;
  sizeMiB: number;
  /** The zone the volume lives in (EBS volumes are zonal). */
  zone?: string;
}

/** Who asks for a volume: a node, for the member's assignment at an epoch. */
export interface Holder {
  node: string;
  epoch: number;
}

export interface VolumeProvider {
  readonly kind: 'local' | 'loop' | 'aws-ebs';
  /**
   * Create the volume if needed, attach it to this node and mount it; returns
   * the host directory to bind into the container. Idempotent. Refuses a
   * volume held by another node at the same or a later epoch; takes it from
   * a holder at an earlier epoch (whose claim the controldb has already ended).
   */
  attach(vol: VolumeSpec, holder: Holder): Promise<string>;
  /** Unmount and detach from this node; idempotent. */
  detach(vol: VolumeSpec): Promise<void>;
}

export interface IpProvider {
  readonly kind: 'none' | 'local' | 'aws';
  /** Make `ip` answer on this node (moving it here from wherever it was). Idempotent. */
  add(ip: string): Promise<void>;
  /** Stop answering for `ip` on this node. Idempotent. */
  remove(ip: string): Promise<void>;
}

export interface DnsProvider {
  readonly kind: 'embedded' | 'route53';
  /** Point the A record `name` (fully qualified, no trailing dot) at `ip`. */
  upsert(name: string, ip: string): Promise<void>;
  /**
   * Remove the A record `name`, only while it still points at `ip`: another node may have pointed it at the
   * member's new home meanwhile. Idempotent; nothing when the record is gone or points elsewhere.
   */
  remove(name: string, ip: string): Promise<void>;
}
