import test from 'ava';
import { execFileSync } from 'node:child_process';
import path from 'node:path';

// "No cost when off": without an OTLP endpoint the waypoint never loads OpenTelemetry's SDK.
// Checked in a fresh process (this test runner may have loaded it for other tests). The small
// @opentelemetry/api package does not count: prom-client loads it for exemplars whatever we do.
test('building the waypoint loads none of the OpenTelemetry SDK; starting a tracer does', (t) => {
  const dist = path.resolve(__dirname, '../../..');
  const loaded = (code: string): string[] =>
    JSON.parse(execFileSync(process.execPath, ['-e', `${code}; setTimeout(() => console.log(JSON.stringify(Object.keys(require.cache).filter((k) => /@opentelemetry\\/(?!api\\/)/.test(k)))), 200)`], { cwd: dist, encoding: 'utf8' })) as string[];
  t.deepEqual(loaded(`require(${JSON.stringify(path.join(dist, 'src/waypoint/waypoint-app.js'))})`), []);
  const on = loaded(
    `require(${JSON.stringify(path.join(dist, 'src/telemetry/tracing/request-tracer.js'))}).RequestTracer.create({ endpoint: 'http://127.0.0.1:9/v1/traces', serviceName: 's', resource: {}, samplingPercent: 0, exportDelayMs: 1000, logger: { info() {} } }).then((tr) => tr.shutdown())`,
  );
  t.true(on.some((k) => k.includes('sdk-trace-base')), 'the SDK is loaded once a tracer is created');
});
