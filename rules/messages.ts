import type { RuleProblem } from './problems.ts';

/**
 * Customer messages: one plain-text template beside a rule, `<rule_id>.message.txt`, that support
 * sends to the customer of an order case. The placeholders are the order's facts, so only order
 * rules may have one; a rule without a file has no customer message.
 */
export const MESSAGE_SUFFIX = '.message.txt';

/** The placeholders a customer message may use, with what each becomes. */
export const messagePlaceholders = {
  order_id: 'the order id',
  amount: 'the amount in major units, with the decimals of the currency (12.50 for CNY, 1250 for JPY)',
  currency: 'the ISO 4217 currency code',
  time: 'when the attempt was reported, UTC, "YYYY-MM-DD HH:MM UTC"',
  channel: 'the payment channel (alipay, wechat_pay, card, ...)',
  transaction_id: "the payment platform's transaction serial number",
} as const;
export type MessagePlaceholder = keyof typeof messagePlaceholders;
export type MessageValues = Record<MessagePlaceholder, string>;

/** Templates longer than this are refused: a customer message is a few sentences. */
export const MAX_MESSAGE_CHARS = 4_000;

const names = Object.keys(messagePlaceholders) as MessagePlaceholder[];
const isPlaceholder = (name: string): name is MessagePlaceholder => (names as string[]).includes(name);

/** A template cut into literal text and placeholders; `{{` and `}}` stand for literal braces. */
export type MessagePart = { text: string } | { placeholder: MessagePlaceholder };

/** "line L, column C" (1-based) of `index` in `text`: where an editor puts the cursor. */
function position(text: string, index: number): string {
  const before = text.slice(0, index);
  const line = before.split('\n').length;
  const column = index - before.lastIndexOf('\n');
  return `line ${line}, column ${column}`;
}

/** Parses a template: its parts, or every problem with the line and column it is at. Pure. */
export function parseMessageTemplate(file: string, text: string): { ok: true; parts: MessagePart[] } | { ok: false; problems: RuleProblem[] } {
  if (text.length > MAX_MESSAGE_CHARS)
    return { ok: false, problems: [{ file, path: '$', message: `is ${text.length} characters long; a customer message has at most ${MAX_MESSAGE_CHARS}.` }] };
  const problems: RuleProblem[] = [];
  const parts: MessagePart[] = [];
  let literal = '';
  const known = `known placeholders: ${names.map((n) => `{${n}}`).join(', ')}`;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if ((ch === '{' || ch === '}') && text[i + 1] === ch) {
      literal += ch;
      i++;
      continue;
    }
    if (ch === '}') {
      problems.push({ file, path: position(text, i), message: `a "}" without its "{"; write "}}" for a literal brace.` });
      continue;
    }
    if (ch !== '{') {
      literal += ch;
      continue;
    }
    const end = text.indexOf('}', i);
    const inner = end < 0 ? '' : text.slice(i + 1, end);
    if (end < 0 || inner.includes('{') || inner.includes('\n')) {
      problems.push({ file, path: position(text, i), message: `a "{" that is not closed on its line; write "{{" for a literal brace (${known}).` });
      continue;
    }
    const name = inner.trim();
    if (!isPlaceholder(name)) {
      problems.push({ file, path: position(text, i), message: `unknown placeholder {${inner}}; ${known}.` });
    } else {
      if (literal) parts.push({ text: literal });
      literal = '';
      parts.push({ placeholder: name });
    }
    i = end;
  }
  if (literal) parts.push({ text: literal });
  return problems.length ? { ok: false, problems } : { ok: true, parts };
}

/** The message with every placeholder replaced by its value. Pure. */
export function renderMessage(parts: readonly MessagePart[], values: MessageValues): string {
  return parts.map((p) => ('text' in p ? p.text : values[p.placeholder])).join('');
}

/** The rule id a message file is for (`charged_but_failed.message.txt` -> `charged_but_failed`), or null for other files. */
export function messageRuleId(fileName: string): string | null {
  return fileName.endsWith(MESSAGE_SUFFIX) ? fileName.slice(0, -MESSAGE_SUFFIX.length) : null;
}
