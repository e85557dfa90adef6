/**
 * Glue between express and the control plane: handlers return `{ status, body }`, errors become
 * RFC 9457 problems naming the field, creates honour Idempotency-Key, and what leaves the process
 * is built by the views below (no secret field is ever copied into a response by accident).
 */
import { entitlementsOf, filterOf } from '../../control-plane/stored-keys.ts'
import { grantAccepts } from '../../control-plane/entitlements.ts'
import type { NextFunction, Request, RequestHandler, Response } from 'express'
import type { Logger } from '../../common/logger.ts'
import { SyndicationError } from '../../common/errors.ts'
import { isStoreUnavailable } from '../../common/store-errors.ts'
import { queryKeys } from '../../common/query-keys.ts'
import { fingerprint, type IdempotencyClaim } from '../../common/idempotency.ts'
import {
  ConflictError,
  ForbiddenError,
  NotFoundError,
  RequestInvalidError,
  ownDeliveryPolicy,
  pinsOf,
} from '../../control-plane/index.ts'
import { sinkPlugin } from '../../consumers/plugins.ts'
import { withoutSecrets } from '../../consumers/secrets.ts'
import type {
  ApiKeyDoc,
  ConnectorDoc,
  ConnectorStatus,
  ControlPlane,
  DeliveryDoc,
  DeliveryPolicy,
  GrantDoc,
  OrganizationDoc,
  Page,
  Principal,
  RetryRequestDoc,
  SubscriptionDoc,
} from '../../control-plane/index.ts'
import { sendProblem, sendStoreUnavailable, type Problem } from '../problem.ts'
import { readableMessage } from '../openapi/parts.ts'

export interface Reply {
  status: number
  body?: unknown
  headers?: Record<string, string>
}

export interface Ctx {
  principal: Principal
  params: Record<string, string>
  query: Record<string, string | undefined>
  // validated against the OpenAPI document before a handler runs; each handler narrows it
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any
  req: Request
}

export type Handler = (ctx: Ctx) => Promise<Reply>

/**
 * Query keys the query parser would drop without a word: a key that starts with `[` (`?[a]=1`, `?[=1`) has no name
 * before its brackets, so it never reaches the validator, which refuses every other unknown parameter. Refused here
 * the same way, naming the key as sent.
 */
export const refuseNamelessQueryKeys: RequestHandler = (req, res, next) => {
  const key = queryKeys(req.originalUrl).find((k) => k.startsWith('['))
  if (key === undefined) return next()
  const message = `Unknown query parameter '${key}'`
  sendProblem(res, {
    title: 'Bad Request',
    status: 400,
    detail: `${key}: ${message}`,
    errors: [{ field: key, in: 'query', message }],
  })
}

export function principalOf(res: Response): Principal {
  return res.locals.principal as Principal
}

/** Field name from an express-openapi-validator path: /body/sink/url → sink.url, /query/limit → limit. */
export function fieldOf(path: string): { field: string; in: string } {
  const parts = path
    .replace(/^\./, '/')
    .split(/[/.]/)
    .filter((p) => p !== '')
  const where = parts[0] ?? 'body'
  const rest = parts.slice(1)
  const location = where === 'params' ? 'path' : where === 'headers' ? 'header' : where
  if (location === 'header' && rest[0])
    return { field: rest[0].replace(/(^|-)([a-z])/g, (_m, d: string, c: string) => d + c.toUpperCase()), in: location }
  return { field: rest.join('.') || where, in: location }
}

export function problemOf(err: unknown): Problem | null {
  if (err instanceof NotFoundError) return { title: 'Not Found', status: 404, detail: err.message }
  if (err instanceof ForbiddenError) return { title: 'Forbidden', status: 403, detail: err.message }
  if (err instanceof ConflictError) {
    // a deal's step refused by its state machine names the state and what is allowed (docs/deals.md)
    const t = err as ConflictError & { currentState?: string; allowed?: string[] }
    const state = t.currentState !== undefined ? { currentState: t.currentState, allowedActions: t.allowed ?? [] } : {}
    return {
      title: 'Conflict',
      status: 409,
      detail: err.message,
      ...(err.field ? { errors: [{ field: err.field, message: err.message }] } : {}),
      ...state,
    }
  }
  if (err instanceof RequestInvalidError)
    return { title: 'Unprocessable Content', status: 422, detail: err.message, errors: err.errors }
  const e = err as {
    status?: unknown
    type?: unknown
    errors?: unknown
    message?: unknown
    headers?: Record<string, string>
  }
  const bodyProblem = (title: string, status: number, detail: string, message: string) => ({
    title,
    status,
    detail,
    errors: [{ field: 'body', message }],
  })
  if (e && e.type === 'entity.too.large')
    return bodyProblem('Content Too Large', 413, 'the request body exceeds the limit', 'too large')
  if (e && e.type === 'entity.parse.failed')
    return bodyProblem('Bad Request', 400, 'the body is not valid JSON', 'is not valid JSON')
  if (e && typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
    if (e.status === 404 || e.status === 405) {
      return {
        title: e.status === 404 ? 'Not Found' : 'Method Not Allowed',
        status: e.status,
        detail: e.status === 404 ? 'no such route' : 'method not allowed on this route',
      }
    }
    // the validator's 415 names the request's path; what is at fault is the Content-Type header
    const list =
      e.status === 415
        ? [{ path: '/headers/content-type', message: typeof e.message === 'string' ? e.message : 'is not supported' }]
        : Array.isArray(e.errors)
          ? (e.errors as Array<{ path?: string; message?: string }>)
          : []
    const errors = list.map((x) => {
      const f = fieldOf(x.path ?? '')
      return { field: f.field, in: f.in, message: readableMessage(x.message ?? 'is invalid') }
    })
    const titles: Record<number, string> = {
      400: 'Bad Request',
      404: 'Not Found',
      405: 'Method Not Allowed',
      413: 'Content Too Large',
      415: 'Unsupported Media Type',
    }
    const detail =
      errors.length > 0
        ? errors.map((x) => `${x.field}: ${x.message}`).join('; ')
        : typeof e.message === 'string'
          ? e.message
          : undefined
    return {
      title: titles[e.status] ?? 'Bad Request',
      status: e.status,
      ...(detail ? { detail } : {}),
      ...(errors.length > 0 ? { errors } : {}),
    }
  }
  return null
}

/** The error handler of the management router: problems for what we know, 500 (logged) otherwise. */
export function problemHandler(logger: Logger) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const problem = problemOf(err)
    if (problem) {
      const allow = (err as { headers?: Record<string, string> }).headers
      if (allow) for (const [k, v] of Object.entries(allow)) res.setHeader(k, v)
      sendProblem(res, problem)
      return
    }
    if (isStoreUnavailable(err)) {
      const message = 'management request held: the store is unreachable (503)'
      sendStoreUnavailable(res, 'changed', { logger, message, req, err })
      return
    }
    logger.error('management request failed', {
      method: req.method,
      path: req.path,
      code: err instanceof SyndicationError ? err.code : undefined,
      err,
    })
    sendProblem(res, { title: 'Internal Server Error', status: 500 })
  }
}

export interface OpOptions {
  /** A create: honours Idempotency-Key. */
  idempotent?: boolean
}

export function op(cp: ControlPlane, handler: Handler, options: OpOptions = {}): RequestHandler {
  return async (req, res, next) => {
    const principal = principalOf(res)
    const ctx: Ctx = {
      principal,
      params: req.params as Record<string, string>,
      query: req.query as Record<string, string | undefined>,
      body: req.body,
      req,
    }
    const idemKey = options.idempotent ? req.get('Idempotency-Key') : undefined
    let claim: IdempotencyClaim | null = null
    try {
      if (idemKey !== undefined) {
        // the same request: method, path (no query) and JSON body, under the caller's API key
        const print = fingerprint(req.method, req.originalUrl.split('?')[0]!, JSON.stringify(req.body ?? null))
        const outcome = await cp.idempotency.claim(`${principal.keyId}:${idemKey}`, print)
        if (outcome.kind === 'reused') {
          throw new RequestInvalidError([
            {
              field: 'Idempotency-Key',
              message: 'was already used with a different request; use a new key for a new request',
            },
          ])
        }
        if (outcome.kind === 'in-progress')
          throw new ConflictError(
            'a request with this Idempotency-Key is still in progress; retry later',
            'Idempotency-Key',
          )
        if (outcome.kind === 'replay') {
          res.setHeader('Idempotent-Replayed', 'true')
          res.status(outcome.response.status).json(JSON.parse(outcome.response.body))
          return
        }
        claim = outcome.claim
      }
      const reply = await handler(ctx)
      if (claim !== null)
        await cp.idempotency.complete(claim, {
          status: reply.status,
          headers: {},
          body: JSON.stringify(reply.body ?? null),
        })
      for (const [k, v] of Object.entries(reply.headers ?? {})) res.setHeader(k, v)
      if (reply.body === undefined) res.status(reply.status).end()
      else res.status(reply.status).json(reply.body)
    } catch (err) {
      // the request failed: forget the key so that a retry runs again
      if (claim !== null) await cp.idempotency.release(claim).catch(() => undefined)
      next(err)
    }
  }
}

export function pageRequest(q: Record<string, string | undefined>) {
  const n = Number(q.limit ?? 50)
  return { limit: Number.isInteger(n) && n > 0 ? Math.min(n, 200) : 50, cursor: q.cursor }
}

export function pageView<T, V>(p: Page<T>, view: (t: T) => V) {
  return { items: p.items.map(view), nextCursor: p.nextCursor }
}

// ------------------------------------------------------------------------------------ views

/** A partner a publisher has only offered a grant to shows its public name, nothing more. */
export const organizationView = (o: OrganizationDoc & { relationship?: 'offered' | 'active' | undefined }) =>
  o.relationship === 'offered'
    ? { id: o._id, kind: o.kind, name: o.name, relationship: o.relationship }
    : {
        id: o._id,
        kind: o.kind,
        name: o.name,
        slug: o.slug,
        profile: o.profile,
        createdAt: o.createdAt,
        updatedAt: o.updatedAt,
        ...(o.relationship !== undefined ? { relationship: o.relationship } : {}),
      }

export const apiKeyView = (k: ApiKeyDoc) => ({
  id: k._id,
  prefix: k.prefix,
  scope: k.scope,
  organizationId: k.organizationId,
  name: k.name,
  createdAt: k.createdAt,
  expiresAt: k.expiresAt,
  revokedAt: k.revokedAt,
  lastUsedAt: k.lastUsedAt,
  rotatedFrom: k.rotatedFrom,
})

export const grantView = (g: GrantDoc) => {
  const accepted = grantAccepts(g)
  return {
    id: g._id,
    publisherId: g.publisherId,
    partnerId: g.partnerId,
    entitlements: entitlementsOf(g.entitlements),
    status: g.status ?? 'active',
    acceptedEventTypes: accepted,
    pendingEventTypes: g.eventTypes.filter((t) => !accepted.includes(t)),
    acceptedAt: g.acceptedAt ?? null,
    version: g.version,
    createdAt: g.createdAt,
    updatedAt: g.updatedAt,
  }
}

/** The sink with its secret fields removed; `secretsSet` names those that are set. */
function sinkView(sink: SubscriptionDoc['sink']) {
  const { config, set } = withoutSecrets(sink, sinkPlugin(sink.type).secretPaths)
  return set.length > 0 ? { ...config, secretsSet: set } : config
}

/**
 * What the caller may see of a subscription: a publisher sees that its partner subscribes (name,
 * event types, pinned versions, state), never where to (the sink's type only), how (delivery policy,
 * filter, fields) or its secrets.
 */
export const subscriptionViewFor = (p: Principal, policies: PolicyDefaults) => (s: SubscriptionDoc) =>
  p.scope === 'publisher'
    ? {
        id: s._id,
        partnerId: s.partnerId,
        name: s.name,
        eventTypes: s.eventTypes,
        schemaVersions: pinsOf(s),
        sink: { type: s.sink.type },
        startFrom: s.startFrom,
        createdAt: s.createdAt,
        updatedAt: s.updatedAt,
      }
    : subscriptionView(s, policies)

/** Resolves what applies to a subscription's deliveries (the control plane, with the platform's defaults). */
export interface PolicyDefaults {
  effectiveDeliveryPolicy(s: SubscriptionDoc): DeliveryPolicy
}

export const subscriptionView = (s: SubscriptionDoc, policies: PolicyDefaults) => ({
  id: s._id,
  partnerId: s.partnerId,
  name: s.name,
  eventTypes: s.eventTypes,
  ...(s.filter !== undefined ? { filter: filterOf(s.filter) } : {}),
  ...(s.fields !== undefined ? { fields: s.fields } : {}),
  schemaVersions: pinsOf(s),
  ...(s.schemaIssues?.length ? { schemaIssues: s.schemaIssues } : {}),
  sink: sinkView(s.sink),
  deliveryPolicy: ownDeliveryPolicy(s),
  effectiveDeliveryPolicy: policies.effectiveDeliveryPolicy(s),
  startFrom: s.startFrom,
  webhookSecrets: s.webhookSecrets.map((w) => ({ id: w.id, createdAt: w.createdAt, expiresAt: w.expiresAt })),
  createdAt: s.createdAt,
  updatedAt: s.updatedAt,
})

/**
 * A publisher sees that a partner's connector failed and when, not the message (it may name the partner's endpoint).
 */
function lastErrorFor(p: Principal | undefined, e: ConnectorStatus['lastError']) {
  if (!e || p?.scope !== 'publisher') return e ?? null
  return {
    code: e.code,
    message: 'the delivery to the partner failed (the details are visible to the partner)',
    at: e.at,
  }
}

export const connectorStatusView = (c: ConnectorDoc, p?: Principal) => ({
  state: c.status?.state ?? 'unassigned',
  desiredState: c.desiredState,
  workerId: c.status?.workerId ?? null,
  positions: c.status?.positions ?? [],
  lag: c.status?.lag ?? null,
  freshnessSeconds: c.status?.freshnessSeconds ?? null,
  freshnessBreachedSince: c.status?.freshnessBreachedSince ?? null,
  lastError: lastErrorFor(p, c.status?.lastError ?? null),
  snapshot: c.status?.snapshot ?? null,
  reportedAt: c.status?.reportedAt ?? null,
  pendingChanges: (c.status?.appliedGeneration ?? 0) < c.generation,
  appliedResetId: c.status?.appliedResetId ?? null,
})

export const connectorView = (c: ConnectorDoc, p?: Principal) => ({
  id: c._id,
  subscriptionId: c.subscriptionId,
  partnerId: c.partnerId,
  desiredState: c.desiredState,
  generation: c.generation,
  restartRequestedAt: c.restartRequestedAt ?? null,
  offsetReset: c.offsetReset ?? null,
  status: connectorStatusView(c, p),
  updatedAt: c.updatedAt,
})

export const deliveryView = (d: DeliveryDoc) => ({
  id: d._id,
  subscriptionId: d.subscriptionId,
  eventId: d.eventId,
  eventType: d.eventType,
  key: d.key,
  status: d.status,
  attemptCount: d.attemptCount,
  attempts: d.attempts,
  source: d.source,
  createdAt: d.createdAt,
  updatedAt: d.updatedAt,
  deliveredAt: d.deliveredAt,
  deadAt: d.deadAt,
  deadReason: d.deadReason,
  retryRequestedAt: d.retryRequestedAt,
  test: d.test === true,
})

export const retryRequestView = (r: RetryRequestDoc) => ({
  id: r._id,
  subscriptionId: r.subscriptionId,
  kind: r.kind,
  eventId: r.eventId,
  eventType: r.eventType ?? null,
  status: r.status,
  requestedAt: r.requestedAt,
  completedAt: r.completedAt,
  outcome: r.outcome ?? null,
  // a retry of every dead letter under way or done: its counts so far (the cursor and page bounds stay inside)
  progress: r.progress
    ? {
        taken: r.progress.taken,
        redelivered: r.progress.redelivered,
        superseded: r.progress.superseded,
        failed: r.progress.failed,
      }
    : null,
})
