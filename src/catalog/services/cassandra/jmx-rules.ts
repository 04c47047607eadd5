// What Cassandra's JMX exporter serves (src/catalog/jmx-exporter.ts): the
// metrics Cassandra's dashboards read (client requests, storage, compaction,
// dropped messages, thread pools, caches) as cassandra_<type>_<name>, lower
// case, with scope, keyspace and table as labels. Only those MBeans are read:
// a node has thousands (per table), and a scrape must take well under a second.
// Scopes may hold hyphens (Native-Transport-Requests, Read-QUORUM): \S+.
export const CASSANDRA_JMX_RULES = `lowercaseOutputName: true
lowercaseOutputLabelNames: true
includeObjectNames:
  - 'org.apache.cassandra.metrics:type=ClientRequest,*'
  - 'org.apache.cassandra.metrics:type=Storage,*'
  - 'org.apache.cassandra.metrics:type=Compaction,*'
  - 'org.apache.cassandra.metrics:type=DroppedMessage,*'
  - 'org.apache.cassandra.metrics:type=ThreadPools,*'
  - 'org.apache.cassandra.metrics:type=Cache,*'
  - 'java.lang:type=Memory'
  - 'java.lang:type=GarbageCollector,*'
rules:
  - pattern: 'org.apache.cassandra.metrics<type=(\\w+), path=(\\w+), scope=(\\S+), name=(\\w+)><>(Count|Value)'
    name: cassandra_$1_$4
    labels: { path: "$2", scope: "$3" }
  - pattern: 'org.apache.cassandra.metrics<type=(\\w+), scope=(\\S+), name=(\\w+)><>(Count|Value)'
    name: cassandra_$1_$3
    labels: { scope: "$2" }
  - pattern: 'org.apache.cassandra.metrics<type=(\\w+), scope=(\\S+), name=(\\w+)><>(\\d+)thPercentile'
    name: cassandra_$1_$3_seconds
    labels: { scope: "$2", quantile: "0.$4" }
    valueFactor: 0.000001
  - pattern: 'org.apache.cassandra.metrics<type=(\\w+), name=(\\w+)><>(Count|Value)'
    name: cassandra_$1_$2
  - pattern: 'java.lang.*'
`;
