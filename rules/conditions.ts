import type { Condition } from './schema.ts';

export type { Condition };

/** A comparison of one fact with a value: the leaves of a condition tree. */
export type Comparison = Extract<Condition, { fact: string }>;

/**
 * Whether a comparison can be judged from its fact's value (or bounds on it) alone: no
 * JSONPath into the fact, and a plain value rather than a `{ "fact": ... }` reference.
 */
export const isPlain = (c: Comparison): boolean => c.path === undefined && !(c.value !== null && typeof c.value === 'object' && 'fact' in c.value);

/**
 * What a walk over a condition tree makes of each kind of node, given a context `C` passed down
 * unchanged. `walk` goes into a child, so a walk decides how far it descends: the pre-check
 * stops at the first child that settles an `all` or `any`, and may leave a `not` unvisited.
 */
export interface ConditionWalk<T, C> {
  all(children: readonly Condition[], walk: (c: Condition, ctx: C) => T, ctx: C): T;
  any(children: readonly Condition[], walk: (c: Condition, ctx: C) => T, ctx: C): T;
  not(child: Condition, walk: (c: Condition, ctx: C) => T, ctx: C): T;
  comparison(c: Comparison, ctx: C): T;
}

/**
 * The walker over rule conditions: a function of (tree, context) built once from what each kind
 * of node becomes. The engine's pre-check (rules/evaluate.ts), the SQL screen's HAVING clause and
 * the stuck scan's age thresholds (detection/) are all walks of this kind.
 */
export function conditionWalker<T, C = void>(w: ConditionWalk<T, C>): (c: Condition, ctx: C) => T {
  const walk = (c: Condition, ctx: C): T =>
    'all' in c ? w.all(c.all, walk, ctx) : 'any' in c ? w.any(c.any, walk, ctx) : 'not' in c ? w.not(c.not, walk, ctx) : w.comparison(c, ctx);
  return walk;
}

/** Every comparison of a tree, those under `not` included, in the order written. */
export const comparisons: (c: Condition) => Comparison[] = conditionWalker<Comparison[]>({
  all: (children, walk) => children.flatMap((c) => walk(c)),
  any: (children, walk) => children.flatMap((c) => walk(c)),
  not: (child, walk) => walk(child),
  comparison: (c) => [c],
});
