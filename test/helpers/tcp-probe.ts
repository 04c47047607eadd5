// One TCP connect and what came of it, for the tests of services' walls:
// "open", "refused" (something answered no), or "dropped" (no answer at all
// within the timeout, as a firewall's drop gives). Run inside a namespace:
//   node --import tsx tcp-probe.ts HOST PORT [TIMEOUT_MS]
import net from 'node:net';

const [host, port, ms = '1500'] = process.argv.slice(2);
const say = (what: string) => {
  process.stdout.write(`${what}\n`);
  process.exit(0);
};
const s = net.connect({ host, port: Number(port) });
s.setTimeout(Number(ms), () => say('dropped'));
s.on('connect', () => say('open'));
s.on('error', (e: NodeJS.ErrnoException) => say(e.code === 'ECONNREFUSED' ? 'refused' : (e.code ?? e.message)));
