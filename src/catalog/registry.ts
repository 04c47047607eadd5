// The service types, by the name users give in --type: the one list of them.
// Everything else that differs by type (the spec schema, the create flags and
// their help, the stand-in images, routes and subcommands of a type's own) is
// built from this list; a type is its folder under services/ and a line here.
import { UserError } from '../errors.ts';
import { cassandra } from './services/cassandra/cassandra.ts';
import { elasticsearch } from './services/elasticsearch/elasticsearch.ts';
import { kafka } from './services/kafka/kafka.ts';
import { kafkaConnect } from './services/kafka-connect/kafka-connect.ts';
import { postgres } from './services/postgres/postgres.ts';
import { redis } from './services/redis/redis.ts';
import { zookeeper } from './services/zookeeper/zookeeper.ts';
import type { ServiceType } from './types.ts';

// Read on first use, not at load: a type's module may be loaded first (a test of it), and the records layer it uses
// loads this file while that module is still loading.
let types: readonly ServiceType[] | undefined;

/** Every type, in the order the CLI lists them. */
export function serviceTypes(): readonly ServiceType[] {
  if (types) return types;
  const list = [redis, postgres, zookeeper, kafka, kafkaConnect, cassandra, elasticsearch];
  // Two types that gave the same create flag would take each other's values.
  const owners = new Map<string, string>();
  for (const t of list)
    for (const f of Object.keys(t.options?.flags ?? {})) {
      if (owners.has(f)) throw new Error(`types ${owners.get(f)} and ${t.name} both declare --${f}`);
      owners.set(f, t.name);
    }
  return (types = list);
}

export const typeNames = (): string[] => serviceTypes().map((t) => t.name);

/** "zookeeper, kafka, …": the types that have something, for a message or a flag's help. */
export const typesWith = (has: (t: ServiceType) => boolean): string =>
  serviceTypes()
    .filter(has)
    .map((t) => t.name)
    .join(', ');

/** The type of that name; a spec read from the store was checked against the names, so only a caller's typo throws. */
export function serviceType(name: string): ServiceType {
  const t = serviceTypes().find((x) => x.name === name);
  if (!t) throw new UserError(`no service type ${name}; the types are ${typeNames().join(', ')}`);
  return t;
}
