// Services that need others (`--kafka NAME`, `--zookeeper NAME`): what
// create refuses, and how, on one real node. Its agent has no Docker engine,
// so the services made here never leave CREATING: just what the refusals
// need. The Kafka end-to-end file covers the rest with running services
// (a dependent created, the needed one refused deletion, both directions in
// `service get`).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { runCli, startDaemon, stopDaemon, tempDir, type Running } from './helpers/proc.ts';

describe('services that need others', () => {
  let d: Running;
  let dir: string;
  const cli = (args: string[]) => runCli([...args, '--data-dir', dir]);
  const create = (...args: string[]) => cli(['service', 'create', '--detach', ...args]);
  const refusal = async (args: string[], pattern: RegExp) => {
    const r = await create(...args);
    assert.notEqual(r.code, 0, `refused: ${args.join(' ')}`);
    assert.match(r.stderr, pattern);
  };

  before(async () => {
    dir = tempDir();
    d = await startDaemon(['--data-dir', dir, '--docker-host', 'unix:///nonexistent.sock']);
  });
  after(async () => {
    if (d) await stopDaemon(d);
  });

  it('refuses a kafka-connect service without an ACTIVE kafka service, saying which and why', async () => {
    await refusal(['--type', 'kafka-connect', '--name', 'kc'], /a kafka-connect service needs a kafka service: name it with --kafka NAME/);
    await refusal(['--type', 'kafka-connect', '--name', 'kc', '--kafka', 'nope'], /kc needs the kafka service nope, and there is none: create it first/);
    assert.equal((await create('--type', 'redis', '--name', 'cache')).code, 0);
    await refusal(['--type', 'kafka-connect', '--name', 'kc', '--kafka', 'cache'], /--kafka cache: cache is a redis service, not kafka/);
    const kf = await create('--type', 'kafka', '--name', 'kf', '--replicas', '3');
    assert.equal(kf.code, 0, kf.stderr);
    await refusal(['--type', 'kafka-connect', '--name', 'kc', '--kafka', 'kf'], /kc needs kf, which is CREATING: create it once kf is ACTIVE/);
    const list = JSON.parse((await cli(['service', 'list', '--json'])).stdout) as { services: { spec: { name: string } }[] };
    assert.deepEqual(list.services.map((s) => s.spec.name).sort(), ['cache', 'kf'], 'nothing made by a refused create');
  });

  it('refuses a need the type has no use for', async () => {
    await refusal(['--type', 'redis', '--name', 'r2', '--kafka', 'kf'], /--kafka is not for a redis service: it needs no kafka service/);
    await refusal(['--type', 'kafka', '--name', 'kf2', '--zookeeper', 'zk'], /Kafka 4 has no ZooKeeper mode .*leave out --zookeeper/);
  });

  it('shows, in service get, that nothing needs a service yet', async () => {
    const r = await cli(['service', 'get', 'kf', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((JSON.parse(r.stdout) as { needed_by: string[] }).needed_by, []);
  });
});
