// The service kit's pure parts: secrets made once and kept, secret files
// filled from them, and what each type refuses with the option to change.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fillSecrets } from '../src/agent/members.ts';
import { generateSecrets } from '../src/catalog/secrets.ts';
import { postgres, slotName } from '../src/catalog/services/postgres/postgres.ts';
import { redis } from '../src/catalog/services/redis/redis.ts';
import { completeSpec } from '../src/catalog/spec.ts';
import type { MemberContext } from '../src/catalog/types.ts';

const ctx = (state: Record<string, string> = { primary: 'pg-0' }): MemberContext => ({
  domain: 'fc.test',
  ips: ['10.0.0.200', '10.0.0.201', '10.0.0.202'],
  state,
  nodeAddrs: ['10.0.0.11', '10.0.0.12'],
  needed: {},
});

describe('service kit', () => {
  it('makes each secret once and keeps those that exist', () => {
    const first = generateSecrets(['superuser', 'replication'], {});
    assert.match(first.superuser, /^[A-Za-z0-9_-]{32}$/);
    assert.notEqual(first.superuser, first.replication);
    const again = generateSecrets(['superuser', 'replication', 'keyfile'], { superuser: first.superuser });
    assert.equal(again.superuser, first.superuser, 'a kept secret stays');
    assert.notEqual(again.replication, first.replication, 'a missing one is made');
    assert.match(again.keyfile, /^[A-Za-z0-9_-]{32}$/);
  });

  it('fills secret files from the secrets and refuses a name the service lacks', () => {
    assert.equal(fillSecrets('requirepass "{{password}}"\n', { password: 'p4ss' }), 'requirepass "p4ss"\n');
    assert.throws(() => fillSecrets('{{nope}}', { password: 'x' }), /no secret named nope/);
  });

  it("keeps secrets out of members' specs: only templates travel", () => {
    const spec = postgres.normalize({ type: 'postgres', name: 'pg', replicas: 3 });
    const secrets = { superuser: 'SUPERSECRET-superuser-000000000', replication: 'SUPERSECRET-replication-0000000' };
    const text = JSON.stringify(postgres.members(spec, ctx()));
    for (const s of Object.values(secrets)) assert.ok(!text.includes(s));
    assert.match(text, /\{\{superuser\}\}/);
    assert.match(text, /\{\{replication\}\}/);
  });

  it('postgres: names the option to change when a spec cannot work', () => {
    assert.throws(() => postgres.normalize({ type: 'postgres', name: 'pg', replicas: 2, postgres: { syncStandbys: 2 } }), /--sync-standbys 2.*--replicas to 3/);
    const spec = postgres.normalize({ type: 'postgres', name: 'pg', replicas: 3 });
    assert.match(postgres.cannotScale(spec, 2, { primary: 'pg-2' }) ?? '', /pg-2 is the primary.*at least 3/);
    assert.equal(postgres.cannotScale(spec, 2, { primary: 'pg-1' }), undefined);
    assert.match(postgres.cannotScale(spec, 0, {}) ?? '', /at least its primary/);
    // Volumes too small for the WAL: refused at create, naming the flag and the size that will do.
    assert.throws(
      () => postgres.normalize({ type: 'postgres', name: 'pg', volumeSizeMiB: 128 }),
      /--volume-size 128 MiB cannot hold .*give 256 at least, or a --journal-volume-size of 128/,
    );
    assert.throws(
      () => postgres.normalize({ type: 'postgres', name: 'pg', volumeSizeMiB: 64, journalVolumeSizeMiB: 64 }),
      /--journal-volume-size 64 MiB .*give 128 at least/,
    );
    assert.doesNotThrow(() => postgres.normalize({ type: 'postgres', name: 'pg', volumeSizeMiB: 64, journalVolumeSizeMiB: 128 }));
    assert.doesNotThrow(() => postgres.normalize({ type: 'postgres', name: 'pg', volumeSizeMiB: 256 }));
  });

  it('postgres: replication only from members and their nodes, over TLS only; WAL budget within its disk; slots by member', () => {
    const spec = postgres.normalize({ type: 'postgres', name: 'pg-main', replicas: 3, journalVolumeSizeMiB: 128 });
    const [m] = postgres.members(spec, ctx({ primary: 'pg-main-0' }));
    const hba = m.configFiles!.find((f) => f.path === 'pg_hba.conf')!.content;
    const replicationFrom = hba
      .split('\n')
      .filter((l) => l.startsWith('hostssl replication'))
      .map((l) => l.split(/\s+/)[3]);
    assert.deepEqual(replicationFrom, ['10.0.0.200/32', '10.0.0.201/32', '10.0.0.202/32', '10.0.0.11/32', '10.0.0.12/32']);
    assert.ok(!/^host\s/m.test(hba), `no network line takes plaintext:\n${hba}`);
    const conf = m.configFiles!.find((f) => f.path === 'postgresql.conf')!.content;
    assert.match(conf, /^ssl = on$/m);
    assert.match(conf, /sslmode=verify-full sslrootcert=\/data\/tls\/ca\.crt/);
    assert.deepEqual(m.tls, { dir: 'tls', names: ['primary.pg-main.fc.test'] }, 'any member may be the primary: each certificate names it');
    const off = postgres.members({ ...spec, tls: 'off' }, ctx({ primary: 'pg-main-0' }))[0];
    assert.equal(off.tls, undefined);
    assert.match(off.configFiles!.find((f) => f.path === 'pg_hba.conf')!.content, /^host all all 0\.0\.0\.0\/0 scram-sha-256$/m);
    const mib = (name: string) => Number(new RegExp(`^${name} = '(\\d+)MB'$`, 'm').exec(conf)![1]);
    assert.ok(mib('max_wal_size') <= 128 && mib('max_slot_wal_keep_size') <= 128, conf);
    assert.ok(mib('min_wal_size') >= 32 && mib('max_wal_size') >= mib('min_wal_size'), 'both at least two 16 MiB segments');
    assert.equal(m.journal?.mountPath, '/journal');
    assert.equal(slotName('pg-main-2'), 'pg_main_2');
    assert.match(conf, /primary_slot_name = 'pg_main_0'/);
  });

  it('walls and TLS: an access list in canonical form, --tls and --tls-cert-hours only where TLS is served', () => {
    assert.deepEqual(completeSpec({ type: 'postgres', name: 'pg', allow: ['10.1.2.3/16', '192.0.2.7'] }).allow, ['10.1.0.0/16', '192.0.2.7/32']);
    assert.throws(() => completeSpec({ type: 'postgres', name: 'pg', allow: ['10.1.2/16'] }), /"10\.1\.2\/16" is not an IPv4 network/);
    assert.throws(() => completeSpec({ type: 'kafka', name: 'kf', tls: 'on' }), /Kafka services serve no TLS yet: leave out --tls/);
    assert.throws(
      () => completeSpec({ type: 'postgres', name: 'pg', tls: 'off', tlsCertHours: 24 }),
      /--tls-cert-hours is for services that serve TLS, and this PostgreSQL service does not/,
    );
    const [m] = redis.members(completeSpec({ type: 'redis', name: 'c', tlsCertHours: 24 }), ctx({}));
    assert.deepEqual(m.tls, { dir: 'tls', lifetimeHours: 24 });
    assert.match(m.configFiles![0].content, /^port 0\ntls-port 6379\n/);
    assert.match(m.configFiles![0].content, /^tls-replication yes$/m);
    assert.match(m.healthCheck!.join(' '), /redis-cli --tls --cacert \/data\/tls\/ca\.crt/);
  });

  it('redis: refuses what it has no use for, and requires its password', () => {
    assert.throws(
      () => completeSpec({ type: 'redis', name: 'c', journalVolumeSizeMiB: 64 }),
      /Redis has no second volume for a log: leave out --journal-volume-size/,
    );
    assert.throws(
      () => completeSpec({ type: 'redis', name: 'c', postgres: { syncStandbys: 1 } }),
      /--sync-standbys is for PostgreSQL services \(--type postgres\); leave it out for a Redis service/,
    );
    const spec = redis.normalize({ type: 'redis', name: 'c', replicas: 2 });
    const [m] = redis.members(spec, ctx());
    assert.match(m.configFiles![0].content, /^include \/data\/auth\.conf$/m);
    assert.doesNotMatch(m.configFiles![0].content, /protected-mode no/);
    assert.match(m.secretFiles!.find((f) => f.path === 'auth.conf')!.template, /^requirepass "\{\{password\}\}"$/m);
  });
});
