import { readFileSync } from 'node:fs';
import { expect, test } from 'vitest';
import { describeSettings } from './index.ts';

test('the README lists exactly the settings the code reads, with their defaults', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const section = /<!-- settings:start[^>]*-->\n([\s\S]*?)\n<!-- settings:end -->/.exec(readme);
  expect(section, 'README settings markers').not.toBeNull();
  expect(section![1]).toBe(describeSettings());
});
