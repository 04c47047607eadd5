// `--log-driver`: Docker's logging drivers, as `docker run --log-driver`
// names them. A name Docker does not ship is refused at create unless it is a
// plugin's (`repository/name[:tag]`, installed with `docker plugin install`),
// which only the nodes' engines can check when they start the members.
import { UserError } from '../errors.ts';

/** The drivers Docker's engine ships (docs.docker.com/engine/logging/configure/). */
export const BUILT_IN_LOG_DRIVERS = [
  'json-file',
  'local',
  'journald',
  'syslog',
  'gelf',
  'fluentd',
  'awslogs',
  'splunk',
  'etwlogs',
  'gcplogs',
  'logentries',
  'none',
];

const isPluginName = (name: string) => /^[a-z0-9._-]+(\/[a-z0-9._-]+)+(:[A-Za-z0-9._-]+)?$/.test(name);

export function checkLogDriver(name: string): void {
  if (BUILT_IN_LOG_DRIVERS.includes(name) || isPluginName(name)) return;
  throw new UserError(
    `--log-driver "${name}" is not a logging driver Docker has: use one of ${BUILT_IN_LOG_DRIVERS.join(', ')}, or a plugin's name (repository/name:tag) installed on every node`,
  );
}
