/** The stand-in agent's pods file: a bad edit is rejected as a whole, with every problem named. */
import test from 'ava';
import { netnsPath, parseAgentPods } from '../../../src/inpod/agent-pods';

test('pods with defaults, named namespaces and /proc paths', (t) => {
  const r = parseAgentPods('pods:\n  - { uid: u1, name: a1, netns: pod-a1 }\n  - { uid: u2, name: a2, namespace: prod, serviceAccount: sa2, netns: /proc/42/ns/net }\n');
  t.deepEqual(r.errors, []);
  t.deepEqual(r.pods, [
    { uid: 'u1', name: 'a1', namespace: 'default', serviceAccount: 'default', netns: 'pod-a1' },
    { uid: 'u2', name: 'a2', namespace: 'prod', serviceAccount: 'sa2', netns: '/proc/42/ns/net' },
  ]);
  t.is(netnsPath('pod-a1'), '/var/run/netns/pod-a1');
  t.is(netnsPath('/proc/42/ns/net'), '/proc/42/ns/net');
  t.deepEqual(parseAgentPods('').pods, []);
  t.deepEqual(parseAgentPods('pods: []\n').pods, []);
});

test('every problem is reported and no pod is taken from a bad file', (t) => {
  const r = parseAgentPods('pods:\n  - { uid: u1, name: a1, netns: "bad name" }\n  - { uid: u1, name: "", netns: /proc/../etc }\n  - 7\n');
  t.deepEqual(r.pods, []);
  t.deepEqual(r.errors, [
    'pods[0].netns: "bad name" is neither a namespace name nor an absolute path',
    'pods[1].name: expected a non-empty string, got ""',
    "pods[1].netns: \"/proc/../etc\" must not contain '..'",
    'pods[1].uid: "u1" appears twice',
    'pods[2]: expected a mapping',
  ]);
  t.deepEqual(parseAgentPods('pods: {a: 1}').errors, ['pods: expected a list']);
  t.regex(parseAgentPods('pods: [').errors[0]!, /^not valid YAML/);
});
