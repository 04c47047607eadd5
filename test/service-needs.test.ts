// Services that need others (`--kafka NAME`): what create refuses, and how,
// on one real node; and the create flags and defaults each type's folder
// gives, through the CLI as a user meets them. Its agent has no Docker engine,
// so the services made here never leave CREATING: just what the refusals
// need. The Kafka end-to-end file covers the rest with running services
// (a dependent created, the needed one refused deletion, both directions in
// `service get`).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { runCli, startDaemon, stopDaemon, tempDir, type Running } from './helpers/proc.ts';
import { pollUntil } from './helpers/wait.ts';

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
    // No type needs a ZooKeeper service (Kafka 4 runs KRaft): the CLI has no such flag.
    await refusal(['--type', 'kafka', '--name', 'kf2', '--zookeeper', 'zk'], /Unknown argument: zookeeper/);
  });

  it("gives a service its type's member count when --replicas is left out", async () => {
    for (const [type, name, replicas] of [
      ['kafka', 'kfd', 3],
      ['zookeeper', 'zkd', 3],
      ['postgres', 'pgd', 1],
    ] as const) {
      const r = await create('--type', type, '--name', name);
      assert.equal(r.code, 0, r.stderr);
      const s = JSON.parse((await cli(['service', 'get', name, '--json'])).stdout) as { spec: { replicas: number } };
      assert.equal(s.spec.replicas, replicas, `${type} without --replicas`);
    }
  });

  it("says each type's defaults in create's help, and refuses one type's flags for another, naming them", async () => {
    const help = await cli(['service', 'create', '--help']);
    assert.equal(help.code, 0, help.stderr);
    const text = help.stdout.replace(/\s+/g, ' ');
    assert.match(
      text,
      /--volume-size MiB of disk per member \[number\] \[default: redis 256, postgres 1024, zookeeper 1024, kafka 1024, kafka-connect 64, cassandra 4096, elasticsearch 1024\]/,
    );
    assert.match(text, /--replicas .*\[default: redis 1, postgres 1, zookeeper 3, kafka 3, kafka-connect 2, cassandra 3, elasticsearch 3\]/);
    await refusal(
      ['--type', 'redis', '--name', 'r3', '--sync-standbys', '1'],
      /--sync-standbys is for PostgreSQL services \(--type postgres\); leave it out for a Redis service/,
    );
    await refusal(['--type', 'postgres', '--name', 'p3', '--shards', '3'], /--shards, --replicas-per-shard are for Redis services \(--type redis\)/);
    await refusal(
      ['--type', 'redis', '--name', 'r3', '--heap-mib', '256'],
      /--heap-mib is for the types that run on a JVM \(zookeeper, kafka, kafka-connect, cassandra, elasticsearch\); Redis takes --memory/,
    );
  });

  it('shows, in service get, why a service cannot be placed: its conditions', async () => {
    // This node's agent has no Docker engine, so it holds no liveness lease: no node can take a member. The catalog
    // says so on a pass after the create: wait for the condition asserted.
    type Seen = { status: string; conditions?: { type: string; status: string; reason: string; message: string; observedGeneration: number }[] };
    const s = (await pollUntil(
      async () => JSON.parse((await cli(['service', 'get', 'kfd', '--json'])).stdout) as Seen,
      (x) => x.conditions?.some((c) => c.type === 'Stalled' && c.status === 'True') ?? false,
      { ms: 20_000, what: 'kfd to be Stalled' },
    )) as Required<Seen>;
    assert.equal(s.status, 'CREATING');
    const byType = Object.fromEntries(s.conditions.map((c) => [c.type, c]));
    assert.deepEqual(Object.keys(byType), ['Ready', 'Progressing', 'Degraded', 'Stalled']);
    assert.equal(byType.Ready.status, 'False');
    assert.equal(byType.Progressing.status, 'True');
    assert.equal(byType.Stalled.status, 'True');
    assert.equal(byType.Stalled.reason, 'Unschedulable');
    assert.match(byType.Stalled.message, /no node can run kfd-0: .* is not live \(no node lease/);
    assert.equal(byType.Stalled.observedGeneration, 0);
    const human = await cli(['service', 'get', 'kfd']);
    assert.match(human.stdout, /^Stalled +True +Unschedulable /m);
  });

  it('shows, in service get, that nothing needs a service yet', async () => {
    const r = await cli(['service', 'get', 'kf', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((JSON.parse(r.stdout) as { needed_by: string[] }).needed_by, []);
  });

  it('refuses a backup schedule or retention that does not parse, and a drill without a schedule, naming the flag; shows a schedule, its next run and the target in service get', async () => {
    await refusal(['--type', 'redis', '--name', 'r3', '--backup-schedule', 'every day'], /--backup-schedule "every day": a cron expression has 5 fields/);
    await refusal(
      ['--type', 'redis', '--name', 'r3', '--backup-schedule', '61 * * * *'],
      /--backup-schedule "61 \* \* \* \*" does not parse as a cron expression: .*59/,
    );
    await refusal(
      ['--type', 'redis', '--name', 'r3', '--backup-retention', 'forever'],
      /--backup-retention "forever": give a count of backups to keep \(such as 7\) or an age/,
    );
    // Every type backs up now; a drill of each scheduled backup needs a schedule.
    await refusal(['--type', 'redis', '--name', 'r3', '--backup-verify'], /--backup-verify drills each scheduled backup: give --backup-schedule too/);
    const r = await create('--type', 'redis', '--name', 'r3', '--backup-schedule', '0 3 * * *', '--backup-retention', '7');
    assert.equal(r.code, 0, r.stderr);
    const view = JSON.parse((await cli(['service', 'get', 'r3', '--json'])).stdout) as { backups: Record<string, unknown> };
    const next = new Date();
    next.setUTCHours(3, 0, 0, 0);
    if (next.getTime() <= Date.now()) next.setUTCDate(next.getUTCDate() + 1);
    assert.deepEqual(view.backups, {
      target: `dir:${dir}/backups`,
      warning: null, // one node: its own disk is all there is
      schedule: '0 3 * * *',
      retention: '7',
      next_run: next.toISOString(),
      last_success: null,
      last_failure: null,
      verify: false,
      last_drill: null,
    });
    const text = (await cli(['service', 'get', 'r3'])).stdout;
    assert.match(text, /backups: to dir:.*\/backups, on "0 3 \* \* \*" \(UTC\), keeping 7\n {2}next run: \S+\n {2}last success: none/);
    const changed = await cli(['backup', 'schedule', 'r3', '--backup-schedule', 'none', '--backup-retention', '30d', '--json']);
    assert.equal(changed.code, 0, changed.stderr);
    assert.deepEqual((({ schedule, retention, next_run }) => ({ schedule, retention, next_run }))(JSON.parse(changed.stdout) as Record<string, unknown>), {
      schedule: null,
      retention: '30d',
      next_run: null,
    });
    const bad = await cli(['backup', 'schedule', 'r3', '--backup-schedule', '* * *']);
    assert.match(bad.stderr, /a cron expression has 5 fields/);
  });
});
