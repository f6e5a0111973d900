import type { TrafficManager } from './manager';
import { planTraffic, type PlanInput } from './plan';
import { TrafficRun, type LocalAnswer, type RunContext } from './run';

export type TrafficStart = { readonly kind: 'none' } | { readonly kind: 'local'; readonly answer: LocalAnswer } | { readonly kind: 'run'; readonly run: TrafficRun };

const NONE: TrafficStart = { kind: 'none' };

/** The request path's entry: plan the request; a run when traffic management applies to it. */
export function beginTraffic(m: TrafficManager, i: PlanInput, ctx: RunContext): TrafficStart {
  const p = planTraffic(i);
  if (p.kind === 'none') return NONE;
  if (p.kind === 'local') return { kind: 'local', answer: { status: p.status, body: p.body, flags: p.flags, details: p.details } };
  return { kind: 'run', run: new TrafficRun(m, p.plan, ctx) };
}
