// The service types the catalog knows, by the name users give in --type.
import { cassandra } from './services/cassandra/cassandra.ts';
import { elasticsearch } from './services/elasticsearch/elasticsearch.ts';
import { kafka } from './services/kafka/kafka.ts';
import { kafkaConnect } from './services/kafka-connect/kafka-connect.ts';
import { postgres } from './services/postgres/postgres.ts';
import { redis } from './services/redis/redis.ts';
import { zookeeper } from './services/zookeeper/zookeeper.ts';
import type { ServiceSpecInput, ServiceType } from './types.ts';

export const SERVICE_TYPES: Record<ServiceSpecInput['type'], ServiceType> = {
  redis,
  postgres,
  zookeeper,
  kafka,
  'kafka-connect': kafkaConnect,
  cassandra,
  elasticsearch,
};
