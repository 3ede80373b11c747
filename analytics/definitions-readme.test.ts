import { readFileSync } from 'node:fs';
import { expect, test } from 'vitest';

test('the README states the rate definitions exactly as analytics/DEFINITIONS.md', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const definitions = readFileSync(new URL('./DEFINITIONS.md', import.meta.url), 'utf8');
  const inReadme = /<!-- definitions:start -->\n([\s\S]*?)<!-- definitions:end -->/.exec(readme);
  expect(inReadme, 'README definitions markers').not.toBeNull();
  const from = definitions.indexOf('### Attempts and their outcome');
  const to = definitions.indexOf('### The stored rates');
  expect(from).toBeGreaterThanOrEqual(0);
  // The README nests them one heading level deeper.
  const expected = definitions.slice(from, to).trimEnd().replace(/^### /gm, '#### ') + '\n';
  expect(inReadme![1]).toBe(expected);
});
