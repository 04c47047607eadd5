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

export interface VolumeProvider {
  readonly kind: 'local' | 'loop' | 'aws-ebs';
  /** Create the volume if it does not exist yet; idempotent. */
  ensure(vol: VolumeSpec): Promise<void>;
  /**
   * Attach the volume to this node and mount it; returns the host directory to
   * bind into the container. Idempotent. Refuses (throws) a volume that is
   * attached to another node: fencing decides who may take it, not this call.
   */
  attach(vol: VolumeSpec): Promise<string>;
  /** Unmount and detach from this node; idempotent. */
  detach(vol: VolumeSpec): Promise<void>;
  /** Take the volume away from whichever node holds it (that node is fenced). */
  forceDetach(vol: VolumeSpec): Promise<void>;
  /** Delete the volume and its data for good. */
  remove(vol: VolumeSpec): Promise<void>;
}

export interface IpProvider {
  readonly kind: 'none' | 'local' | 'aws';
  /** Make `ip` answer on this node (and move it here from wherever it was). Idempotent. */
  add(ip: string): Promise<void>;
  /** Stop answering for `ip` on this node. Idempotent. */
  remove(ip: string): Promise<void>;
}

export interface DnsProvider {
  readonly kind: 'embedded' | 'route53';
  /** Point the A record `name` (fully qualified, no trailing dot) at `ip`. */
  upsert(name: string, ip: string): Promise<void>;
  /** Remove the A record `name`; idempotent. */
  remove(name: string): Promise<void>;
}
