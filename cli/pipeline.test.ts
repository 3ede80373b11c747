import { expect, test } from 'vitest';
import { parseRoles } from './pipeline.ts';

test('--roles takes any of ingest, detect, jobs; none given means all three', () => {
  expect([...parseRoles(undefined)]).toEqual(['ingest', 'detect', 'jobs']);
  expect([...parseRoles('ingest')]).toEqual(['ingest']);
  expect([...parseRoles('jobs, detect')]).toEqual(['jobs', 'detect']);
  expect(() => parseRoles('ingest,detection')).toThrow(/unknown: detection/);
  expect(() => parseRoles('')).toThrow(/comma-separated list of ingest, detect, jobs/);
});
