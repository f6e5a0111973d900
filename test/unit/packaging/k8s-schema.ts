import fs from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';

/**
 * Validates Kubernetes objects against the API's OpenAPI schemas with `kubernetes-models`
 * (generated from the Kubernetes OpenAPI spec, validated with ajv): types, enums, required
 * fields. Each object is matched to its model by apiVersion and kind; an unknown pair is an
 * error, so a manifest cannot slip past validation by using a kind nobody checks.
 */
const MODELS: Record<string, () => new (o: unknown) => { validate(): void }> = {
  'apps/v1/DaemonSet': () => require('kubernetes-models/apps/v1').DaemonSet,
  'apps/v1/Deployment': () => require('kubernetes-models/apps/v1').Deployment,
  'v1/Service': () => require('kubernetes-models/v1').Service,
  'v1/ServiceAccount': () => require('kubernetes-models/v1').ServiceAccount,
  'v1/Namespace': () => require('kubernetes-models/v1').Namespace,
  'v1/ConfigMap': () => require('kubernetes-models/v1').ConfigMap,
  'v1/Secret': () => require('kubernetes-models/v1').Secret,
  'policy/v1/PodDisruptionBudget': () => require('kubernetes-models/policy/v1').PodDisruptionBudget,
  'autoscaling/v2/HorizontalPodAutoscaler': () => require('kubernetes-models/autoscaling/v2').HorizontalPodAutoscaler,
};

export const ROOT = path.resolve(__dirname, '../../../..');

export interface ManifestDoc {
  readonly file: string;
  readonly index: number;
  readonly obj: any;
}

/** Every YAML document of every file in manifests/ (parse errors throw with the file name). */
export function manifestDocs(): ManifestDoc[] {
  const dir = path.join(ROOT, 'manifests');
  const out: ManifestDoc[] = [];
  for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort()) {
    const parsed = parseAllDocuments(fs.readFileSync(path.join(dir, file), 'utf8'));
    parsed.forEach((d, index) => {
      if (d.errors.length) throw new Error(`${file}#${index}: ${d.errors.join('; ')}`);
      const obj = d.toJS();
      if (obj) out.push({ file, index, obj });
    });
  }
  return out;
}

/** Returns the schema violations of one object ('' when it is valid). */
export function schemaErrors(obj: any): string {
  const key = `${obj?.apiVersion}/${obj?.kind}`;
  const model = MODELS[key];
  if (!model) return `no schema known for ${key}`;
  try {
    new (model())(obj).validate();
    return '';
  } catch (err) {
    return (err as Error).message;
  }
}
