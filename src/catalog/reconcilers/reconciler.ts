// The catalog is a list of reconcilers, one per concern, each run on every
// pass for the services in the statuses it acts in. Each is level-triggered:
// it decides from the store as it is now, never from what it did before, so
// a new leader carries on where the old one stopped; and each step is one
// compare-and-set, so two leaders doing the same step cannot double it.
import type { ServicePass } from '../pass.ts';
import type { ServiceStatus } from '../types.ts';

export interface Reconciler {
  /** Names the concern in logs and in a Degraded condition's reason (PlacementFailed). */
  readonly name: string;
  /** The statuses it acts in. */
  readonly during: readonly ServiceStatus[];
  /**
   * One idempotent step. True ends the service's pass here: it wrote something the reconcilers after it must read
   * anew, or they must wait for what it waits for.
   */
  reconcile(s: ServicePass): Promise<boolean>;
}

/** The statuses in which a service's members run, or should. */
export const RUNNING: readonly ServiceStatus[] = ['INITIALIZING', 'ACTIVE', 'UPGRADING', 'RESTARTING'];
