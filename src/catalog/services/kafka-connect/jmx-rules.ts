// What a Kafka Connect worker's JMX exporter serves (src/catalog/jmx-exporter.ts):
// the worker's own figures (connectors, tasks, rebalances) as
// kafka_connect_worker_…, each connector's as kafka_connect_worker_connector_…
// {connector}, lower case, hyphens made underscores; the JVM's (jvm_…) come with the agent.
export const CONNECT_JMX_RULES = `lowercaseOutputName: true
lowercaseOutputLabelNames: true
includeObjectNames:
  - 'kafka.connect:type=connect-worker-metrics,*'
  - 'kafka.connect:type=connect-worker-rebalance-metrics'
  - 'java.lang:type=Memory'
rules:
  - pattern: 'kafka.connect<type=connect-worker-metrics, connector=([^>]+)><>([a-z-]+)'
    name: kafka_connect_worker_connector_$2
    labels: { connector: "$1" }
  - pattern: 'kafka.connect<type=connect-worker-metrics><>([a-z-]+)'
    name: kafka_connect_worker_$1
  - pattern: 'kafka.connect<type=connect-worker-rebalance-metrics><>([a-z-]+)'
    name: kafka_connect_worker_rebalance_$1
  - pattern: 'java.lang.*'
`;
