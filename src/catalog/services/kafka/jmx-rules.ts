// What Kafka's JMX exporter serves (src/catalog/jmx-exporter.ts): Kafka's
// MBeans under the names Kafka's dashboards use (kafka_server_…,
// kafka_controller_…, kafka_network_…), lower case; rates as counters
// (…_total), the rest as gauges; the JVM's own (jvm_…) come with the agent.
export const KAFKA_JMX_RULES = `lowercaseOutputName: true
lowercaseOutputLabelNames: true
rules:
  - pattern: 'kafka.(\\w+)<type=(.+), name=(.+)PerSec\\w*, (.+)=(.+)><>Count'
    name: kafka_$1_$2_$3_total
    labels: { "$4": "$5" }
    type: COUNTER
  - pattern: 'kafka.(\\w+)<type=(.+), name=(.+)PerSec\\w*><>Count'
    name: kafka_$1_$2_$3_total
    type: COUNTER
  - pattern: 'kafka.(\\w+)<type=(.+), name=(.+), (.+)=(.+), (.+)=(.+)><>Value'
    name: kafka_$1_$2_$3
    labels: { "$4": "$5", "$6": "$7" }
    type: GAUGE
  - pattern: 'kafka.(\\w+)<type=(.+), name=(.+), (.+)=(.+)><>Value'
    name: kafka_$1_$2_$3
    labels: { "$4": "$5" }
    type: GAUGE
  - pattern: 'kafka.(\\w+)<type=(.+), name=(.+)><>Value'
    name: kafka_$1_$2_$3
    type: GAUGE
`;
