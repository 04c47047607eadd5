// The monitoring kit (monitoring/), checked with promtool: the alert rules
// load and pass their unit tests, every dashboard query is PromQL Prometheus
// accepts, the README's scrape config is valid, and every firecampd_* metric
// named is one the daemon serves. promtool is required, never skipped:
// without it none of this is proven.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { createRegistry } from '../src/metrics/registry.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const read = (path: string) => readFileSync(join(root, path), 'utf8');

/** Runs promtool in the repo; its output, or a failure that shows it (and the hint, if any). */
function promtool(args: string[], hint = ''): string {
  try {
    return execFileSync('promtool', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err: any) {
    if (err.code === 'ENOENT') assert.fail("promtool not found: install Debian's prometheus package (promtool)");
    assert.fail(`promtool ${args.join(' ')} failed:\n${err.stdout}${err.stderr}${hint}`);
  }
}

const dashboardFiles = readdirSync(join(root, 'monitoring/grafana')).filter((f) => f.endsWith('.json'));
const dashboards = dashboardFiles.map((file) => ({ file, d: JSON.parse(read(`monitoring/grafana/${file}`)) }));

/** Every query of a dashboard, with where it is: the panels' targets and the label_values() selectors of its variables. */
function queries(file: string, d: any): { where: string; expr: string }[] {
  const panels = d.panels.flatMap((p: any) => p.targets.map((t: any) => ({ where: `${file}: panel "${p.title}" ${t.refId}`, expr: t.expr })));
  const vars = d.templating.list
    .filter((v: any) => v.type === 'query')
    .map((v: any) => ({ where: `${file}: variable ${v.name}`, expr: /^label_values\((.*), *\w+\)$/.exec(v.definition)?.[1] ?? '' }));
  return [...panels, ...vars];
}

/** A query as Prometheus sees it once Grafana filled in its variables. */
const substituted = (expr: string) => expr.replace(/\$__(rate_interval|interval|range)/g, '1m').replace(/\$\{?\w+\}?/g, '.*');

/** Metrics with no `service` label: the nodes' own (Raft, controldb, leases, the daemon's process). */
const NODE_METRICS = /^firecampd_(raft_|controldb_|node_lease_held|process_|nodejs_)/;
/** Whether a query names the nodes' own metrics only (any other has a selector in braces, or no firecampd_ name). */
function nodeOnly(expr: string): boolean {
  const names = expr.match(/\bfirecampd_\w+/g) ?? [];
  const selectors = [...expr.matchAll(/(\w+)\{/g)].map((m) => m[1]);
  return names.length > 0 && [...names, ...selectors].every((n) => NODE_METRICS.test(n));
}

describe('alert rules', () => {
  it('load', () => {
    assert.match(promtool(['check', 'rules', 'monitoring/alerts.yml']), /SUCCESS/);
  });

  it('pass their unit tests', () => {
    assert.match(promtool(['test', 'rules', 'monitoring/alerts.test.yml']), /SUCCESS/);
  });

  // promtool checks none of this: each alert waits (for:), says how bad (severity) and what happened.
  it('each have for, a severity, a summary and a description', () => {
    const alerts = read('monitoring/alerts.yml')
      .split(/\n\s*- alert: /)
      .slice(1);
    assert.ok(alerts.length >= 10);
    for (const a of alerts) {
      const name = a.split('\n')[0];
      assert.match(a, /\n\s*for: \d+[smh]\n/, `${name}: for`);
      assert.match(a, /\n\s*severity: (warning|critical)\n/, `${name}: severity`);
      assert.match(a, /\n\s*summary: .*\{\{ \$labels\.\w+ \}\}/, `${name}: a summary from the labels`);
      assert.match(a, /\n\s*description: /, `${name}: description`);
    }
  });

  // An alert only tested where it fires might fire always; one only tested where it does not, never.
  it('are each tested both firing and quiet', () => {
    const names = [...read('monitoring/alerts.yml').matchAll(/- alert: (\w+)/g)].map((m) => m[1]);
    const evals = read('monitoring/alerts.test.yml')
      .split(/\n\s*- eval_time: /)
      .slice(1)
      .map((e) => ({ name: /alertname: (\w+)/.exec(e)?.[1], quiet: /exp_alerts: \[\]/.test(e) }));
    for (const name of names) {
      assert.ok(
        evals.some((e) => e.name === name && !e.quiet),
        `${name} is tested firing`,
      );
      assert.ok(
        evals.some((e) => e.name === name && e.quiet),
        `${name} is tested quiet`,
      );
    }
  });
});

describe('Grafana dashboards', () => {
  it('are there', () => {
    assert.deepEqual(dashboardFiles.sort(), [
      'cassandra.json',
      'elasticsearch.json',
      'firecampd-cluster.json',
      'kafka.json',
      'postgres.json',
      'redis.json',
      'zookeeper.json',
    ]);
  });

  for (const { file, d } of dashboards) {
    it(`${file} is provisionable as it is`, () => {
      assert.ok(typeof d.uid === 'string' && d.uid.length > 0, 'a fixed uid');
      assert.ok(typeof d.title === 'string' && d.title.length > 0, 'a title');
      assert.equal(d.id, undefined, 'no id: Grafana gives one');
      assert.equal(d.__inputs, undefined, 'no __inputs: nothing to fill in on import');
      assert.equal(d.schemaVersion, 39);
      const datasource = d.templating.list.find((v: any) => v.name === 'datasource');
      assert.deepEqual([datasource?.type, datasource?.query], ['datasource', 'prometheus'], 'the data source is a variable');
      assert.equal(new Set(d.panels.map((p: any) => p.id)).size, d.panels.length, 'panel ids are unique');
    });

    it(`${file}: panels query Prometheus through the variable`, () => {
      assert.ok(d.panels.length >= 4, 'at least 4 panels');
      for (const p of d.panels) {
        assert.ok(['timeseries', 'stat', 'table'].includes(p.type), `${p.title}: ${p.type}`);
        assert.equal(p.datasource?.uid, '${datasource}', `${p.title}: datasource`);
        assert.ok(p.targets?.length > 0, `${p.title}: targets`);
        for (const t of p.targets) {
          assert.ok(typeof t.expr === 'string' && t.expr.trim().length > 0, `${p.title} ${t.refId}: expr`);
          assert.equal(t.datasource?.uid, '${datasource}', `${p.title} ${t.refId}: datasource`);
          // Whatever is per service follows the service picked; only the nodes' own figures have no service.
          if (!nodeOnly(t.expr)) assert.match(t.expr, /service=~"\$service"/, `${p.title} ${t.refId}: by $service`);
        }
      }
    });
  }

  // Without Grafana: each query, its variables filled in, as a recording rule that promtool parses.
  it('queries are PromQL that Prometheus parses', () => {
    const all = dashboards.flatMap(({ file, d }) => queries(file, d));
    const rules = { groups: [{ name: 'dashboards', rules: all.map((q, n) => ({ record: `dashboard:check:${n}`, expr: substituted(q.expr) })) }] };
    const dir = mkdtempSync(join(tmpdir(), 'firecampd-dashboards-'));
    try {
      // JSON is YAML: promtool reads it as a rules file.
      writeFileSync(join(dir, 'rules.yml'), JSON.stringify(rules, null, 2));
      const legend = all.map((q, n) => `dashboard:check:${n} = ${q.where}`).join('\n');
      assert.match(promtool(['check', 'rules', join(dir, 'rules.yml')], `\nwhich are:\n${legend}`), new RegExp(`SUCCESS: ${all.length} rules found`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('metric names', () => {
  const used = new Set<string>();
  before(() => {
    const texts = [
      read('monitoring/alerts.yml'),
      read('monitoring/alerts.test.yml'),
      ...dashboards.flatMap(({ file, d }) => queries(file, d).map((q) => q.expr)),
    ];
    for (const text of texts) for (const [name] of text.matchAll(/\bfirecampd_[a-z0-9_]+/g)) used.add(name);
  });

  it('firecampd_* are those the daemon registers', async () => {
    assert.ok(used.has('firecampd_member_up') && used.has('firecampd_raft_term'));
    // The daemon's own gauges, by their quoted names where they are registered.
    const sources = ['src/metrics/members.ts', 'src/metrics/cluster.ts', 'src/daemon.ts'].map(read).join('\n');
    // prom-client's default metrics, prefixed firecampd_: as the daemon's registry lists them.
    const defaults = new Set((await createRegistry().getMetricsAsJSON()).map((m) => m.name));
    for (const name of used) {
      const registered = sources.includes(`'${name}'`) || defaults.has(name) || defaults.has(name.replace(/_(bucket|sum|count)$/, ''));
      assert.ok(registered, `${name} is not a metric firecampd serves`);
    }
  });
});

describe("the README's Prometheus config", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'firecampd-prometheus-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('is valid, with the rules, the token and the CA where it says', () => {
    const config = /```yaml\n(rule_files:[\s\S]*?scrape_configs:[\s\S]*?)```/.exec(read('monitoring/README.md'))?.[1];
    assert.ok(config, 'a yaml block with rule_files and scrape_configs');
    // promtool checks that the files named exist: put them in a temporary /etc/prometheus.
    mkdirSync(join(dir, 'firecampd'));
    copyFileSync(join(root, 'monitoring/alerts.yml'), join(dir, 'firecampd/alerts.yml'));
    writeFileSync(join(dir, 'firecampd.token'), 'FCA1-dummy\n');
    writeFileSync(join(dir, 'firecampd-ca.crt'), '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
    writeFileSync(join(dir, 'prometheus.yml'), config.replaceAll('/etc/prometheus/', `${dir}/`));
    assert.match(promtool(['check', 'config', join(dir, 'prometheus.yml')]), /SUCCESS/);
    // The alerts select the jobs by name.
    for (const [, job] of read('monitoring/alerts.yml').matchAll(/job="([\w-]+)"/g)) assert.match(config, new RegExp(`job_name: ${job}\\n`), job);
  });
});
