// The access part of `service get`: who reaches the members, said plainly.
import { readNodes, type RecordStore } from '../catalog/records.ts';
import type { ServiceSpec } from '../catalog/types.ts';
import { defaultNetworks } from './walls.ts';

export interface AccessView {
  /** The networks that reach the members, besides the cluster's nodes and the members themselves. */
  allow: string[];
  /** True when the service has no access list of its own and these are the networks of the nodes' addresses. */
  default: boolean;
}

export function accessView(store: RecordStore, spec: ServiceSpec): AccessView {
  return spec.allow ? { allow: spec.allow, default: false } : { allow: defaultNetworks(readNodes(store)), default: true };
}

/** One line for `service get`. */
export const accessLine = (a: AccessView) =>
  `access: the cluster's nodes, the members and ${a.allow.join(', ')}${a.default ? " (the default: the nodes' networks; change it with service config NAME --allow)" : ''}; every other packet to the members dropped`;
