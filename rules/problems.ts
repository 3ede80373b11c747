import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { Static, TSchema } from '@sinclair/typebox';

/** One thing wrong with a rule, feature or fixture file: where it is and how to fix it. */
export interface RuleProblem {
  /** The file as the user named it (relative paths stay relative). */
  file: string;
  /** JSONPath of the offending value, e.g. `$.conditions.all[0].fact`; `$` for the whole file. */
  path: string;
  /** What is wrong and how to fix it. */
  message: string;
}

/** `file at $.path: message`, the form the CLI prints. */
export function formatProblem(p: RuleProblem): string {
  return `${p.file} at ${p.path}: ${p.message}`;
}

/** Appends a JSONPath segment: `.name` for identifiers, `[0]` for indexes, `["odd key"]` otherwise. */
export function childPath(parent: string, key: string | number): string {
  if (typeof key === 'number') return `${parent}[${key}]`;
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(key) ? `${parent}.${key}` : `${parent}[${JSON.stringify(key)}]`;
}

/** Converts an ajv instancePath (JSON Pointer) to JSONPath. */
export function pointerToPath(pointer: string): string {
  if (!pointer) return '$';
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce<string>((acc, seg) => childPath(acc, /^\d+$/.test(seg) ? Number(seg) : seg), '$');
}

/** Levenshtein distance, for "did you mean" hints. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

/** ` Did you mean "x"?` when a known name is close to `name`, otherwise ''. */
export function didYouMean(name: string, known: Iterable<string>): string {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = distance(name.toLowerCase(), k.toLowerCase());
    if (d < bestD) [best, bestD] = [k, d];
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(name.length / 3)) ? ` Did you mean "${best}"?` : '';
}

// verbose: errors carry the offending value, for "did you mean" on enums.
const ajv = new Ajv({ allErrors: true, strict: false, verbose: true });

/** Compiles a TypeBox schema once for `schemaProblems`. */
export function compileSchema<T extends TSchema>(schema: T): ValidateFunction<Static<T>> {
  return ajv.compile<Static<T>>(schema);
}

/** Looks the schema of an instance path up, to quote its description in hints. */
function schemaAt(root: TSchema, pointer: string): Record<string, unknown> | undefined {
  let node: Record<string, unknown> | undefined = root as Record<string, unknown>;
  for (const seg of pointer.split('/').slice(1)) {
    if (!node) return undefined;
    const props = node.properties as Record<string, Record<string, unknown>> | undefined;
    if (props && seg in props) node = props[seg];
    else if (/^\d+$/.test(seg) && node.items && typeof node.items === 'object') node = node.items as Record<string, unknown>;
    else return undefined;
  }
  return node;
}

function describe(root: TSchema, e: ErrorObject): { path: string; message: string } {
  const path = pointerToPath(e.instancePath);
  const params = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties': {
      const name = String(params.additionalProperty);
      const props = Object.keys((schemaAt(root, e.instancePath)?.properties as object | undefined) ?? {});
      return {
        path: childPath(path, name),
        message: `unknown field "${name}".${didYouMean(name, props)} Allowed fields here: ${props.join(', ')}.`,
      };
    }
    case 'required': {
      const name = String(params.missingProperty);
      const desc = (schemaAt(root, `${e.instancePath}/${name}`)?.description as string | undefined) ?? '';
      return { path, message: `missing required field "${name}". Add it${desc ? `: ${desc}` : '.'}` };
    }
    case 'enum': {
      const allowed = (params.allowedValues as unknown[]).map(String);
      const hint = typeof e.data === 'string' ? didYouMean(e.data, allowed) : '';
      return { path, message: `${JSON.stringify(e.data)} is not allowed; must be one of ${allowed.map((v) => JSON.stringify(v)).join(', ')}.${hint}` };
    }
    default: {
      const desc = (schemaAt(root, e.instancePath)?.description as string | undefined) ?? '';
      return { path, message: `${e.message ?? 'is invalid'}.${desc ? ` Expected: ${desc}` : ''}` };
    }
  }
}

/**
 * Problems from the errors of a failed ajv check, one per location (the first error there
 * is the most useful; ajv reports every branch of a union otherwise). `skip` drops errors
 * under paths another checker reports better.
 */
export function schemaProblems(
  file: string,
  root: TSchema,
  errors: ErrorObject[] | null | undefined,
  skip: (pointer: string) => boolean = () => false,
): RuleProblem[] {
  const seen = new Set<string>();
  const problems: RuleProblem[] = [];
  for (const e of errors ?? []) {
    if (skip(e.instancePath) || e.keyword === 'if' || e.keyword === 'anyOf') continue;
    const { path, message } = describe(root, e);
    if (seen.has(path)) continue;
    seen.add(path);
    problems.push({ file, path, message });
  }
  return problems;
}

/** Parses JSON text, or returns a problem that says where the syntax error is. */
export function parseJson(file: string, text: string): { ok: true; value: unknown } | { ok: false; problem: RuleProblem } {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (err) {
    return { ok: false, problem: { file, path: '$', message: `not valid JSON: ${(err as Error).message}. Check for a missing comma, quote or bracket.` } };
  }
}
