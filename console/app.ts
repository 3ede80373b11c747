import { hkdfSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import csrf from '@fastify/csrf-protection';
import formbody from '@fastify/formbody';
import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import secureSession from '@fastify/secure-session';
import { Eta } from 'eta';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { caseStatuses, resolutions, type CaseChange, type CaseStore, type InboxCursor } from '../cases/index.ts';
import type { Logger } from '../log/index.ts';
import { queryRows, type ClickHouseClient } from '../storage/clickhouse.ts';
import { AUTOMATION_ASSIGNEE, automationQueries, type ManualCommands, type ManualResult } from '../automation/index.ts';
import type { CaseFeed } from './live.ts';
import { customerMessage, type CustomerMessages } from './customer-message.ts';
import { readOrderStory } from './orders.ts';
import { DEFAULT_WINDOW_MS, readRelatedByShared } from './related.ts';
import { readEntityTimeline, TIMELINE_HOURS } from './timeline.ts';
import { formatDuration, parseDuration, type LoadedRule } from '../rules/index.ts';
import { mayReadRuleDetails } from './users.ts';
import { canActOnCases, USER_NAME, type User, type UserStore } from './users.ts';

declare module '@fastify/secure-session' {
  interface SessionData {
    user: string;
    /** When the user logged in (ms): the session ends `sessionMinutes` later whatever happens. */
    login_at: number;
    _csrf: string;
  }
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Who is asking, and how they proved it (set for every route but the login form and the stylesheet). */
    auth?: { user: User; via: 'session' | 'token' };
  }
  interface FastifyContextConfig {
    /** Reachable without logging in. */
    public?: boolean;
  }
}

export interface ConsoleAppOptions {
  users: UserStore;
  cases: CaseStore;
  clickhouse: ClickHouseClient;
  database: string;
  /** Fact id -> the feature catalog's description: evidence rows are labelled with it. */
  factDescriptions: ReadonlyMap<string, string>;
  /** Rule id -> its customer message template: order cases of those rules show a ready-to-send message. @default none */
  customerMessages?: CustomerMessages;
  /** Rule id -> its window (ms): related cases are those of entities seen with the case's entity in it. @default 24 h for every rule */
  ruleWindows?: ReadonlyMap<string, number>;
  /** The rules as loaded at start-up, for the rules page. @default none */
  rules?: readonly LoadedRule[];
  sessionSecret: string;
  sessionMinutes: number;
  loginAttemptsPerMinute: number;
  logger: Logger;
  /** Case changes for the pages' live updates (`GET /events`). */
  feed: CaseFeed;
  /** Cookies only over HTTPS; off for the plain-HTTP default on 127.0.0.1. @default false */
  secureCookies?: boolean;
  /** @default Date.now */
  now?: () => number;
  /** Support's retry and cancel of automation's commands; without it the case page only lists them. */
  commands?: ManualCommands;
}

/** Bodies larger than this are refused with 413: a note and a resolution need far less. */
export const BODY_LIMIT = 16 * 1024;
const MAX_NOTE = 4_000;
const ID = { type: 'string', minLength: 1, maxLength: 128 } as const;
const severities = ['low', 'medium', 'high', 'critical'] as const;
const actions = ['assign', 'acknowledge', 'resolve'] as const;
/** An inbox age: a whole number and a unit, m, h or d (empty: any age). */
const AGE_PATTERN = '^([0-9]{1,4}[mhd])?$';
/** The ages the inbox offers. */
const ages = ['1h', '4h', '24h', '7d', '30d'] as const;
type Action = (typeof actions)[number];

/** An error answered as `{"error": {"code", "message"}}` with its HTTP status. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const viewsDir = new URL('./views/', import.meta.url).pathname;
const stylesheet = readFileSync(new URL('./static/console.css', import.meta.url), 'utf8');
const liveScript = readFileSync(new URL('./static/live.js', import.meta.url), 'utf8');
const copyScript = readFileSync(new URL('./static/copy.js', import.meta.url), 'utf8');
/** A live-update stream ends after this long at most; the browser reconnects (and is authenticated again). */
const MAX_STREAM_MS = 30 * 60_000;

/** The inbox cursor as an opaque URL-safe string, and back (a bad one is a 400 naming `cursor`). */
export const encodeCursor = (c: InboxCursor): string => Buffer.from(JSON.stringify([c.rank, c.openedAt, c.caseId])).toString('base64url');
export function decodeCursor(text: string): InboxCursor {
  try {
    const [rank, openedAt, caseId] = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as unknown[];
    if (
      Number.isInteger(rank) &&
      typeof openedAt === 'string' &&
      /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/.test(openedAt) &&
      typeof caseId === 'string' &&
      caseId.length <= 128
    ) {
      return { rank: rank as number, openedAt, caseId };
    }
  } catch {
    // falls through to the 400 below
  }
  throw new HttpError(400, 'invalid_request', 'cursor is not a next_cursor this API returned.');
}

/**
 * The support console: pages and the JSON API over the case store and ClickHouse. Built on
 * Fastify and its official plugins (sessions, CSRF, rate limit, helmet), pages rendered by Eta,
 * which escapes every value by default; see docs/adr/0004-support-console.md.
 */
export async function createConsoleApp(o: ConsoleAppOptions): Promise<FastifyInstance> {
  const now = o.now ?? Date.now;
  // Ids are up to 128 characters, each up to 12 bytes once percent-encoded (4-byte UTF-8).
  const app = Fastify({
    bodyLimit: BODY_LIMIT,
    maxParamLength: 128 * 12,
    logger: false,
    trustProxy: false,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
  });
  const eta = new Eta({ views: viewsDir, cache: true, autoEscape: true });

  await app.register(helmet, {
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'none'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'"],
        connectSrc: ["'self'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        baseUri: ["'none'"],
      },
    },
  });
  await app.register(formbody, { bodyLimit: BODY_LIMIT });
  await app.register(secureSession, {
    cookieName: 'paysentinel_session',
    // A 32-byte key derived from the configured secret, so every instance with the same secret reads the same cookies.
    key: Buffer.from(hkdfSync('sha256', o.sessionSecret, 'paysentinel console', 'session cookie key', 32)),
    expiry: o.sessionMinutes * 60,
    cookie: { path: '/', httpOnly: true, sameSite: 'strict', secure: o.secureCookies ?? false },
  });
  await app.register(csrf, { sessionPlugin: '@fastify/secure-session' });
  await app.register(rateLimit, { global: false });

  const wantsJson = (req: FastifyRequest) => req.url.startsWith('/api/');
  const page = (reply: FastifyReply, name: string, data: Record<string, unknown>, status = 200) =>
    reply
      .code(status)
      .type('text/html; charset=utf-8')
      .send(
        eta.render(`./${name}`, {
          ...data,
          user: data.user ?? null,
          path: (...parts: string[]) => parts.map((p, i) => (i % 2 ? encodeURIComponent(p) : p)).join(''),
        }),
      );

  app.setErrorHandler((err: FastifyError | HttpError, req, reply) => {
    let status = 500;
    let code = 'internal';
    let message = 'Something went wrong; the console log has the details.';
    if (err instanceof HttpError) [status, code, message] = [err.status, err.code, err.message];
    else if ((err as FastifyError).validation) {
      const e = err as FastifyError;
      status = 400;
      code = 'invalid_request';
      const v = e.validation![0];
      const field = `${e.validationContext ?? 'request'}${v?.instancePath ? v.instancePath.replaceAll('/', '.') : ''}`;
      const params = (v?.params ?? {}) as { additionalProperty?: string; missingProperty?: string };
      message = params.additionalProperty
        ? `${field}.${params.additionalProperty} is not a field this request takes.`
        : params.missingProperty
          ? `${field}.${params.missingProperty} is required.`
          : `${field}: ${v?.message ?? e.message}.`;
    } else if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') [status, code, message] = [413, 'too_large', `The body is over ${BODY_LIMIT} bytes.`];
    else if (err.code?.startsWith('FST_CSRF_'))
      [status, code, message] = [403, 'csrf', 'The form is stale or did not come from this console: reload the page and try again.'];
    else if (err.statusCode === 429) [status, code, message] = [429, 'rate_limited', 'Too many login attempts: wait a minute and try again.'];
    else if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) [status, code, message] = [err.statusCode, 'bad_request', err.message];
    else o.logger.error('console request failed', { err, url: req.url.slice(0, 200) });
    if (wantsJson(req) || !req.auth) {
      if (status === 401 && !wantsJson(req)) return page(reply, 'login', { error: null, csrf: reply.generateCsrf(), next: req.url }, 401);
      return reply.code(status).send({ error: { code, message } });
    }
    return page(reply, 'error', { user: req.auth.user, status, message, csrf: reply.generateCsrf() }, status);
  });
  app.setNotFoundHandler((req) => {
    throw new HttpError(404, 'not_found', `Nothing at ${req.method} ${req.url.slice(0, 200)}.`);
  });

  // Every route needs a user but those marked public: a bearer token, or a live session cookie.
  app.addHook('onRequest', async (req) => {
    if (req.routeOptions.config.public) return;
    const header = req.headers.authorization;
    if (header !== undefined) {
      const token = /^Bearer ([A-Za-z0-9_-]{1,200})$/.exec(header)?.[1];
      const user = token ? o.users.byToken(token) : null;
      if (!user) throw new HttpError(401, 'unauthenticated', 'The bearer token is unknown or malformed ("paysentinel users token NAME" makes one).');
      req.auth = { user, via: 'token' };
      return;
    }
    const name = req.session.get('user');
    const loginAt = req.session.get('login_at') ?? 0;
    const user = name && now() - loginAt < o.sessionMinutes * 60_000 ? o.users.byName(name) : null;
    if (!user) throw new HttpError(401, 'unauthenticated', 'Log in at /login or send "Authorization: Bearer TOKEN".');
    req.auth = { user, via: 'session' };
  });

  /** State changes: a role that may act, and (for browser sessions) a valid CSRF token. */
  const mayAct = [
    async (req: FastifyRequest) => {
      if (!canActOnCases(req.auth!.user.role)) throw new HttpError(403, 'forbidden', `Role ${req.auth!.user.role} may read cases but not change them.`);
    },
    (req: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) => (req.auth!.via === 'session' ? app.csrfProtection(req, reply, done) : done()),
  ];

  // ---- login ----
  app.get('/login', { config: { public: true } }, async (req, reply) => page(reply, 'login', { error: null, csrf: reply.generateCsrf(), next: '/' }));
  app.post(
    '/login',
    {
      config: { public: true, rateLimit: { max: o.loginAttemptsPerMinute, timeWindow: 60_000 } },
      preHandler: app.csrfProtection,
      schema: {
        body: {
          type: 'object',
          required: ['name', 'password'],
          properties: {
            name: { type: 'string', maxLength: 64 },
            password: { type: 'string', maxLength: 1024 },
            next: { type: 'string', maxLength: 300 },
            _csrf: { type: 'string' },
          },
        },
      },
    },
    async (req, reply) => {
      const body = req.body as { name: string; password: string; next?: string };
      const user = USER_NAME.test(body.name) ? await o.users.login(body.name, body.password) : null;
      // Only a path on this console: never an absolute or scheme-relative URL.
      const next = body.next && /^\/(?![/\\])/.test(body.next) ? body.next : '/';
      if (!user) return page(reply, 'login', { error: 'Unknown name or wrong password.', csrf: reply.generateCsrf(), next }, 401);
      req.session.regenerate();
      req.session.set('user', user.name);
      req.session.set('login_at', now());
      return reply.redirect(next, 303);
    },
  );
  app.post('/logout', { preHandler: (req, reply, done) => app.csrfProtection(req, reply, done) }, async (req, reply) => {
    req.session.delete();
    return reply.redirect('/login', 303);
  });
  app.get('/static/console.css', { config: { public: true } }, async (_req, reply) =>
    reply.type('text/css; charset=utf-8').header('cache-control', 'max-age=300').send(stylesheet),
  );
  app.get('/static/live.js', { config: { public: true } }, async (_req, reply) =>
    reply.type('text/javascript; charset=utf-8').header('cache-control', 'max-age=300').send(liveScript),
  );
  app.get('/static/copy.js', { config: { public: true } }, async (_req, reply) =>
    reply.type('text/javascript; charset=utf-8').header('cache-control', 'max-age=300').send(copyScript),
  );

  // ---- live updates: Server-Sent Events naming the cases that changed ----
  const streams = new Set<() => void>();
  app.addHook('preClose', async () => {
    for (const end of [...streams]) end();
  });
  app.get('/events', async (req, reply) => {
    const loginAt = req.session.get('login_at');
    const sessionLeft = req.auth!.via === 'session' && loginAt ? loginAt + o.sessionMinutes * 60_000 - now() : MAX_STREAM_MS;
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
    res.write('retry: 3000\n\n');
    const unsubscribe = o.feed.subscribe((changes) => res.write(`event: cases\ndata: ${JSON.stringify(changes.map((c) => c.case_id))}\n\n`));
    const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), 25_000);
    const end = () => {
      if (!streams.delete(end)) return;
      clearInterval(keepAlive);
      clearTimeout(limit);
      unsubscribe();
      res.end();
    };
    // A stream must not outlive the login it was opened with.
    const limit = setTimeout(end, Math.max(0, Math.min(sessionLeft, MAX_STREAM_MS)));
    streams.add(end);
    req.raw.on('close', end);
  });

  // ---- API ----
  const inboxQuery = {
    type: 'object',
    additionalProperties: false,
    properties: {
      status: { type: 'string', enum: [...caseStatuses, ''] },
      severity: { type: 'string', enum: [...severities, ''] },
      rule: { type: 'string', maxLength: 128 },
      entity_type: { type: 'string', maxLength: 32 },
      entity_id: { type: 'string', maxLength: 128 },
      assignee: { type: 'string', maxLength: 64 },
      q: { type: 'string', maxLength: 128 },
      max_age: { type: 'string', pattern: AGE_PATTERN },
      min_age: { type: 'string', pattern: AGE_PATTERN },
      limit: { type: 'string', pattern: '^[0-9]{1,3}$' },
      cursor: { type: 'string', maxLength: 600 },
    },
  } as const;
  type InboxQuery = Partial<Record<keyof (typeof inboxQuery)['properties'], string>>;

  /** The inbox's `assignee`: a user name, `me`, `-` (nobody), `people` or `any`/empty (no filter on it). */
  const assigneeFilter = (a: string | undefined, me: string): string | undefined =>
    a === undefined || a === '' || a === 'any' || a === 'people' ? undefined : a === '-' ? '' : a === 'me' ? me : a;

  const readInbox = async (qs: InboxQuery, me: string) => {
    const limit = qs.limit ? Number(qs.limit) : 50;
    if (limit < 1 || limit > 200) throw new HttpError(400, 'invalid_request', 'limit must be a whole number from 1 to 200.');
    return o.cases.inbox({
      status: qs.status || undefined,
      severity: qs.severity || undefined,
      rule: qs.rule || undefined,
      entityType: qs.entity_type || undefined,
      entityId: qs.entity_id || undefined,
      assignee: assigneeFilter(qs.assignee, me),
      // "people" (the page's default): what still needs a person, not what automation is handling.
      notAssignee: qs.assignee === 'people' ? AUTOMATION_ASSIGNEE : undefined,
      q: qs.q?.trim() || undefined,
      openedFromMs: qs.max_age ? now() - parseDuration(qs.max_age)! : undefined,
      openedBeforeMs: qs.min_age ? now() - parseDuration(qs.min_age)! : undefined,
      limit,
      after: qs.cursor ? decodeCursor(qs.cursor) : undefined,
    });
  };

  /** A case with everything its API answer shows; with its entity's timeline too for the page (read alongside, not after). */
  const readCase = async (id: string, withTimeline = false) => {
    const c = await o.cases.get(id);
    if (!c) throw new HttpError(404, 'not_found', `No case ${id}.`);
    const withMessage = c.entity_type === 'order' && (o.customerMessages?.has(c.rule_id) ?? false);
    const windowMs = o.ruleWindows?.get(c.rule_id) ?? DEFAULT_WINDOW_MS;
    const deps = { clickhouse: o.clickhouse, database: o.database, cases: o.cases };
    const [history, related, shared, story, commands, timeline] = await Promise.all([
      o.cases.history(id),
      o.cases.ofEntities(c.entity_type, [c.entity_id]),
      readRelatedByShared(deps, c, windowMs),
      withMessage ? readOrderStory(deps, c.entity_id) : null,
      queryRows<Record<string, unknown>>(o.clickhouse, automationQueries(o.database).ofCases([id]), 'commands of case'),
      withTimeline ? readEntityTimeline(o.clickhouse, o.database, c.entity_type, c.entity_id, now()) : null,
    ]);
    const answer = {
      ...c,
      history,
      related: related.filter((r) => r.case_id !== c.case_id),
      related_window_ms: windowMs,
      related_entities: shared,
      customer_message: customerMessage(c, story, o.customerMessages ?? new Map()),
      commands,
    };
    return { answer, timeline: timeline ?? [] };
  };

  /** Support retries or cancels one of a case's commands (automation/manual.ts), recorded in its history. */
  const commandAction = async (req: FastifyRequest, id: string, commandId: string, action: 'retry' | 'cancel', note: string) => {
    if (!o.commands) throw new HttpError(404, 'not_found', 'Commands cannot be changed from this console.');
    const run = action === 'retry' ? o.commands.retry : o.commands.cancel;
    const result: ManualResult = await run(id, commandId, req.auth!.user.name, note, now());
    if (result.kind === 'not_found') throw new HttpError(404, 'not_found', `Case ${id} has no command ${commandId}.`);
    if (result.kind === 'conflict') throw new HttpError(409, 'conflict', result.message);
    return result.command;
  };

  const act = async (req: FastifyRequest, id: string, action: Action, body: { note?: string; resolution?: string }) => {
    if (action === 'resolve' && !body.resolution)
      throw new HttpError(400, 'invalid_request', `resolution is required to resolve: one of ${resolutions.join(', ')}.`);
    const change: CaseChange = action === 'resolve' ? { action, resolution: body.resolution as (typeof resolutions)[number] } : { action };
    const result = await o.cases.act(id, change, req.auth!.user.name, body.note ?? '', now());
    if (result.kind === 'not_found') throw new HttpError(404, 'not_found', `No case ${id}.`);
    if (result.kind === 'conflict') throw new HttpError(409, 'conflict', result.message);
    return result.case;
  };

  app.get('/api/v1/cases', { schema: { querystring: inboxQuery } }, async (req) => {
    const { cases, next } = await readInbox(req.query as InboxQuery, req.auth!.user.name);
    return { cases, next_cursor: next ? encodeCursor(next) : null };
  });
  app.get(
    '/api/v1/cases/:id',
    { schema: { params: { type: 'object', properties: { id: ID } } } },
    async (req) => (await readCase((req.params as { id: string }).id)).answer,
  );
  const actionBody = {
    type: 'object',
    additionalProperties: false,
    properties: {
      note: { type: 'string', maxLength: MAX_NOTE },
      resolution: { type: 'string', enum: [...resolutions] },
      _csrf: { type: 'string', maxLength: 200 },
    },
  } as const;
  for (const action of actions) {
    app.post(
      `/api/v1/cases/:id/${action}`,
      { preHandler: mayAct, schema: { params: { type: 'object', properties: { id: ID } }, body: actionBody } },
      async (req) => act(req, (req.params as { id: string }).id, action, (req.body ?? {}) as { note?: string; resolution?: string }),
    );
  }
  const commandParams = { type: 'object', properties: { id: ID, command: ID } } as const;
  for (const action of ['retry', 'cancel'] as const) {
    app.post(`/api/v1/cases/:id/commands/:command/${action}`, { preHandler: mayAct, schema: { params: commandParams, body: actionBody } }, async (req) => {
      const { id, command } = req.params as { id: string; command: string };
      return commandAction(req, id, command, action, ((req.body ?? {}) as { note?: string }).note ?? '');
    });
    app.post(`/cases/:id/commands/:command/${action}`, { preHandler: mayAct, schema: { params: commandParams, body: actionBody } }, async (req, reply) => {
      const { id, command } = req.params as { id: string; command: string };
      await commandAction(req, id, command, action, ((req.body ?? {}) as { note?: string }).note ?? '');
      return reply.redirect(`/cases/${encodeURIComponent(id)}`, 303);
    });
  }
  app.get('/api/v1/orders/:id', { schema: { params: { type: 'object', properties: { id: ID } } } }, async (req) => {
    const id = (req.params as { id: string }).id;
    const story = await readOrderStory({ clickhouse: o.clickhouse, database: o.database, cases: o.cases }, id);
    if (!story) throw new HttpError(404, 'not_found', `No order or transaction ${id} is stored.`);
    return story;
  });

  /**
   * Every rule (the loaded ones, and any other that has cases in the last 30 days) with its
   * numbers; `details` (conditions, message templates) for the roles that may read them.
   */
  const readRules = async (req: FastifyRequest) => {
    const stats = new Map((await o.cases.ruleStats(now())).map((r) => [r.rule, r]));
    const details = mayReadRuleDetails(req.auth!.user.role);
    const empty = { cases_24h: 0, cases_7d: 0, hits_7d: 0, cases_30d: 0, real_cases: 0, false_positives: 0, no_action_cases: 0, rule_precision: null };
    const loaded = (o.rules ?? []).map((r) => {
      const { rule: _id, ...numbers } = stats.get(r.id) ?? { rule: r.id, ...empty };
      return {
        id: r.id,
        title: r.title,
        version: r.version,
        enabled: r.enabled,
        entity: r.entity,
        severity: r.severity,
        action: r.action,
        cooldown: r.cooldown,
        loaded: true,
        ...numbers,
        ...(details
          ? { description: r.description, conditions: r.conditions, recommended_action: r.recommendedAction, customer_message: r.customerMessage?.text ?? null }
          : {}),
      };
    });
    const known = new Set(loaded.map((r) => r.id));
    const gone = [...stats.values()]
      .filter((s) => !known.has(s.rule))
      .map(({ rule, ...numbers }) => ({
        id: rule,
        title: '',
        version: '',
        enabled: false,
        entity: '',
        severity: '',
        action: '',
        cooldown: '',
        loaded: false,
        ...numbers,
      }));
    return { rules: [...loaded, ...gone], details };
  };
  app.get('/api/v1/rules', async (req) => ({ rules: (await readRules(req)).rules }));

  // ---- pages ----
  app.get('/rules', async (req, reply) => {
    const { rules, details } = await readRules(req);
    return page(reply, 'rules', { user: req.auth!.user, rules, details, csrf: reply.generateCsrf() });
  });
  app.get('/', { schema: { querystring: inboxQuery } }, async (req, reply) => {
    // Support's inbox holds what still needs a person unless they ask for more.
    const qs = { assignee: 'people', ...(req.query as InboxQuery) };
    const [{ cases, next }, counts] = await Promise.all([readInbox(qs, req.auth!.user.name), o.cases.countsByStatus()]);
    const nextQuery = next
      ? new URLSearchParams({ ...Object.fromEntries(Object.entries(qs).filter(([, v]) => v)), cursor: encodeCursor(next) }).toString()
      : null;
    return page(reply, 'inbox', {
      live: true,
      user: req.auth!.user,
      cases,
      counts,
      filter: qs,
      nextQuery,
      statuses: caseStatuses,
      severities,
      ages,
      age: (openedAt: string) => formatDuration(Math.max(0, now() - Date.parse(openedAt.replace(' ', 'T') + 'Z'))),
      csrf: reply.generateCsrf(),
    });
  });
  app.get('/cases/:id', { schema: { params: { type: 'object', properties: { id: ID } } } }, async (req, reply) => {
    const { answer: c, timeline } = await readCase((req.params as { id: string }).id, true);
    const evidence = Object.entries(c.evidence).map(([name, value]) => ({
      name,
      label: o.factDescriptions.get(name) ?? name,
      value: typeof value === 'string' ? value : JSON.stringify(value),
    }));
    return page(reply, 'case', {
      live: true,
      copy: c.customer_message !== null,
      user: req.auth!.user,
      c,
      evidence,
      timeline,
      timelineHours: TIMELINE_HOURS,
      windowText: formatDuration(c.related_window_ms),
      resolutions,
      canAct: canActOnCases(req.auth!.user.role),
      canCommand: canActOnCases(req.auth!.user.role) && o.commands !== undefined,
      csrf: reply.generateCsrf(),
    });
  });
  for (const action of actions) {
    app.post(
      `/cases/:id/${action}`,
      { preHandler: mayAct, schema: { params: { type: 'object', properties: { id: ID } }, body: actionBody } },
      async (req, reply) => {
        const id = (req.params as { id: string }).id;
        await act(req, id, action, (req.body ?? {}) as { note?: string; resolution?: string });
        return reply.redirect(`/cases/${encodeURIComponent(id)}`, 303);
      },
    );
  }
  app.get('/orders/:id', { schema: { params: { type: 'object', properties: { id: ID } } } }, async (req, reply) => {
    const id = (req.params as { id: string }).id;
    const story = await readOrderStory({ clickhouse: o.clickhouse, database: o.database, cases: o.cases }, id);
    if (!story) throw new HttpError(404, 'not_found', `No order or transaction ${id} is stored.`);
    return page(reply, 'order', { user: req.auth!.user, story, csrf: reply.generateCsrf() });
  });

  return app;
}
