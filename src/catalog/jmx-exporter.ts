// The Prometheus JMX exporter, for the types that run on a JVM and have no
// exporter of their own (Kafka): its Java agent (a jar from Maven Central,
// pinned by SHA-256, which each node keeps and copies into the member's
// volume: src/agent/java-agents.ts) loaded by the service's own JVM, serving
// the JVM's MBeans as Prometheus metrics on the member's address. Only the
// service's process loads it (the type's start script adds the flag), not
// the tools run in the same container, which would fight over its port.
import type { MemberSpec } from '../agent/members.ts';
import type { JavaAgentJar } from '../agent/java-agents.ts';

const VERSION = '0.20.0';

export const JMX_EXPORTER_JAR: JavaAgentJar = {
  file: `jmx_prometheus_javaagent-${VERSION}.jar`,
  url: `https://repo1.maven.org/maven2/io/prometheus/jmx/jmx_prometheus_javaagent/${VERSION}/jmx_prometheus_javaagent-${VERSION}.jar`,
  sha256: '8b67ed40485d475648c36d11d21464b484406f85faf912b3363f71a6a7861320',
};

/** Where it serves, on the member's address (the port Strimzi and others give it too). */
export const JMX_EXPORTER_PORT = 9404;

/** Paths in the member's volume: the agent, and its rules. */
const AGENT_PATH = 'firecampd/jmx_prometheus_javaagent.jar';
const CONFIG_PATH = 'firecampd/jmx-exporter.yml';

/**
 * What a JVM type adds to a member for its metrics: the metrics block (the jar copied into the volume), the rules
 * file, and the JVM flag its start script gives the service's process alone (`mountPath` is the volume's).
 */
export function jmxExporter(
  ip: string | undefined,
  mountPath: string,
  rules: string,
): { metrics: NonNullable<MemberSpec['metrics']>; configFile: { path: string; content: string }; jvmFlag: string } {
  return {
    metrics: { port: JMX_EXPORTER_PORT, javaAgent: { ...JMX_EXPORTER_JAR, path: AGENT_PATH } },
    configFile: { path: CONFIG_PATH, content: rules },
    jvmFlag: `-javaagent:${mountPath}/${AGENT_PATH}=${ip ?? '0.0.0.0'}:${JMX_EXPORTER_PORT}:${mountPath}/${CONFIG_PATH}`,
  };
}
