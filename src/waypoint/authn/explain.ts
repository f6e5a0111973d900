import type { Service } from '../../state/types';
import type { L7Config } from '../config/types';
import type { L7Request } from '../l7/request';
import { authnFailureBody, type RequestAuth } from './request-authn';
import type { RequestIdentity } from './types';

/** What /debug/explain says about request authentication, and its effect on the request. */
export interface AuthnExplanation {
  /** null when no RequestAuthentication applies. */
  readonly report: Record<string, unknown> | null;
  /** The verified identity authorization then sees. */
  readonly identity: RequestIdentity | null;
  /** The 401 the request gets, when its token is refused. */
  readonly outcome: { readonly status: 401; readonly body: string; readonly details: string } | null;
}

/**
 * Runs the request's token (given with `header=authorization:Bearer …` or in `path=…?access_token=…`)
 * through the jwtRules that apply, exactly as the data path does, and reports the rules,
 * which one decided and the result.
 */
export async function explainAuthn(authn: RequestAuth | undefined, config: L7Config, svc: Pick<Service, 'name' | 'namespace'> | null, request: L7Request): Promise<AuthnExplanation> {
  const applies = authn?.applicable(config, svc);
  if (!authn || !applies || applies.rules.length === 0) return { report: null, identity: null, outcome: null };
  const r = await authn.check(applies, request);
  const rules = applies.rules.map((x) => `${x.id} (issuer ${x.issuer})`);
  if (r.kind === 'none') return { report: { rules, result: 'no token: no request principal (a policy may still require one)' }, identity: null, outcome: null };
  if (r.kind === 'ok') {
    return {
      report: { rules, rule: r.rule, result: 'verified', requestPrincipal: r.identity.principal, audiences: r.identity.audiences, presenter: r.identity.presenter || null, upstreamHeaders: { removed: r.removeHeaders, set: r.setHeaders.map((h) => h.name) } },
      identity: r.identity,
      outcome: null,
    };
  }
  return {
    report: { rules, rule: r.rule, result: 'refused', failure: r.failure, why: r.message },
    identity: null,
    outcome: { status: 401, body: authnFailureBody(r), details: `jwt_authn_access_denied{${r.failure}}` },
  };
}
