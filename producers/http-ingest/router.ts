/**
 * POST /v1/events/{eventType}: a JSON array of events of one type, from an authenticated publisher.
 *
 * - 401 without a valid API key (authentication is injected: `authenticate(req)`);
 * - 404 for an event type no topic declares (the answer lists the known ones);
 * - 415 unless the body is application/json; 413 above the body limit or the batch size;
 * - 400 when the body is not a JSON array of events, with every bad item by index and JSON Pointer
 *   (errors[].field, e.g. /3/onHand); an invalid batch is rejected whole and nothing is produced;
 * - 403 when an event's manufacturerId is not the publishing organization (errors[].field names it,
 *   e.g. /0/manufacturerId), unless the key is an admin's: a publisher publishes only its own data;
 *   403 for an event type of a topic only the platform writes (partner profiles: the outbox's);
 * - every event carries the publisher in the ce_publisherid header (the grants the sink runtime
 *   applies are the grants of that publisher);
 * - 202 with the event ids once the broker acked every event (acks=all); 503 + Retry-After when
 *   they are not stored (Kafka down, buffer full): never a 2xx for data that is not in Kafka;
 * - `rateLimit`: events per second per API key (a token bucket), checked before the body is read and
 *   charged with the request's events once parsed; over it 429 + Retry-After + the RateLimit fields,
 *   and nothing is produced. An authentication refused as rate-limited or busy is a 429 or 503;
 * - Idempotency-Key (common/idempotency.ts, per organization): the first answer (202 or 400) is stored
 *   and replayed for the window; a key still in progress is 409, a key reused with another body is 422;
 *   a 503 stored nothing, so it frees the key for the retry.
 * - trace context (docs/tracing.md): the request's events carry one, in their traceparent and
 *   tracestate headers. With tracing on, a server span continues the caller's W3C headers and a
 *   `create <topic>` span, ended once the events are stored, is the context its events carry; off,
 *   they carry the caller's traceparent as it came (a valid one), else a new trace.
 */
import { Router, type NextFunction, type Request, type Response } from 'express'
import type { Metrics } from '../../common/metrics.ts'
import type { Kafka } from '../../common/kafka/index.ts'
import type { Collection } from 'mongodb'
import { newTraceparent } from '../../schemas/headers.ts'
import {
  ATTR,
  callerTrace,
  endSpan,
  headersOf,
  inServerSpan,
  kafkaAttributes,
  SpanKind,
  startSpan,
  tracingOn,
  type TraceHeaders,
} from '../../common/tracing.ts'
import { contractSchema } from '../../schemas/contracts.ts'
import { ALL_TOPICS, type TopicSpec } from '../../schemas/topics.ts'
import type { AvroSerde } from '../../schemas/serde/serde.ts'
import type { Logger } from '../../common/logger.ts'
import { RateLimitedError, RetriableError } from '../../common/errors.ts'
import { sendProblem, type Problem } from '../../api/problem.ts'
import { HttpRateLimit, sendRefusal } from '../../api/rate-limit.ts'
import type { RateLimit } from '../../common/token-buckets.ts'
import { createConverter, type Converter } from '../../connectors/source/json-avro.ts'
import { SourceRunner } from '../../connectors/source/runner.ts'
import type { SourceRecord } from '../../connectors/source/types.ts'
import { HttpIngestSource } from './source.ts'
import { readJsonBody } from './body.ts'
import { queryKeys } from '../../common/query-keys.ts'
import {
  IdempotencyStore,
  fingerprint,
  type ClaimOutcome,
  type IdempotencyDoc,
  type StoredResponse,
} from '../../common/idempotency.ts'

export interface Principal {
  organizationId: string
  /** The API key of the request: the partition of the rate limit (absent: the organization). */
  keyId?: string
  /** An admin key may publish on behalf of any publisher: the event's manufacturerId names it. */
  admin?: boolean
}

export interface HttpIngestOptions {
  kafka: Kafka
  serde: AvroSerde
  logger: Logger
  /** Resolves the publisher behind the request (API key), or undefined: 401. */
  authenticate(req: Request): Promise<Principal | undefined>
  /** Topics whose event types can be posted. Default: every declared topic. */
  topics?: readonly TopicSpec[]
  /** Idempotency-Key store; without it the header is ignored. */
  idempotency?: { collection: Collection<IdempotencyDoc>; windowMs: number }
  /** Events per request at most. Default 1000. */
  maxEvents?: number
  /** Request body limit in bytes. Default 5 MiB. */
  bodyLimitBytes?: number
  /** Events waiting for Kafka at most before requests are refused with 503. Default 20000. */
  bufferCapacity?: number
  /** Retry-After of a 503, in seconds. Default 5. */
  retryAfterSeconds?: number
  /** kafkajs producer retries before a request is answered 503. */
  producerRetry?: { retries: number; maxRetryTime: number; initialRetryTime?: number }
  /** Ingest counters by event type and outcome (GET /metrics). */
  metrics?: Metrics
  /** Name of the source instance (ce_source /sources/<name>). Default http-ingest. */
  name?: string
  /** Events per second per API key (token bucket; absent or perSecond 0: unlimited). */
  rateLimit?: RateLimit
}

export interface HttpIngest {
  router: Router
  runner: SourceRunner
  source: HttpIngestSource
  start(): Promise<void>
  stop(): Promise<void>
}

interface EventRoute {
  topic: TopicSpec
  converter: Converter
  /** The Kafka key of an event: its key schema's fields, in order. */
  keyOf(v: Record<string, unknown>): Record<string, unknown>
}

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/

/** The publisher stamped on an event: the caller's organization, or for an admin the event's manufacturerId. */
function publisherOf(v: Record<string, unknown>, principal: Principal): string | undefined {
  if (!principal.admin) return principal.organizationId
  return typeof v.manufacturerId === 'string' ? v.manufacturerId : undefined
}

export function createHttpIngest(options: HttpIngestOptions): HttpIngest {
  const topics = options.topics ?? ALL_TOPICS
  const maxEvents = options.maxEvents ?? 1000
  const bodyLimit = options.bodyLimitBytes ?? 5 * 1024 * 1024
  const retryAfter = String(options.retryAfterSeconds ?? 5)
  const log = options.logger.child({ component: 'http-ingest' })
  const routes = new Map<string, EventRoute>()
  for (const t of topics) {
    const converter = createConverter(contractSchema(t.valueSchema))
    const keyFields = (JSON.parse(contractSchema(t.keySchema)) as { fields: Array<{ name: string }> }).fields.map(
      (f) => f.name,
    )
    const keyOf = (v: Record<string, unknown>) => {
      const key: Record<string, unknown> = {}
      for (const f of keyFields) key[f] = v[f]
      return key
    }
    for (const type of t.eventTypes) routes.set(type, { topic: t, converter, keyOf })
  }
  const knownTypes = [...routes.keys()].sort()
  const store = options.idempotency
    ? new IdempotencyStore(options.idempotency.collection, { windowMs: options.idempotency.windowMs })
    : undefined
  const perKey =
    options.rateLimit && options.rateLimit.perSecond > 0 ? new HttpRateLimit('ingest', options.rateLimit) : undefined

  const source = new HttpIngestSource()
  const name = options.name ?? 'http-ingest'
  const bufferCapacity = options.bufferCapacity ?? 20_000
  const runner = new SourceRunner(
    source,
    { bufferCapacity, maxBatch: Math.max(maxEvents, 5000), pollWaitMs: 100 },
    {
      name,
      kafka: options.kafka,
      serde: options.serde,
      topics,
      logger: options.logger,
      maxBatch: Number.MAX_SAFE_INTEGER, // the source drains whole requests; never split one
      idleMs: 0,
      ...(options.producerRetry ? { producerRetry: options.producerRetry } : {}),
    },
  )

  const router = Router()
  router.post('/v1/events/:eventType', (req: Request, res: Response, next: NextFunction) => {
    if (!tracingOn()) return void ingestRequest(req, res, next)
    inServerSpan(
      { req, res },
      '/v1/events/{eventType}',
      { [ATTR.cloudeventsEventType]: String(req.params.eventType) },
      () => void ingestRequest(req, res, next),
    )
  })

  async function ingestRequest(req: Request, res: Response, next: NextFunction): Promise<void> {
    try {
      const principal = await options.authenticate(req)
      if (!principal) {
        res.setHeader('WWW-Authenticate', 'Bearer')
        return sendProblem(res, {
          title: 'Unauthorized',
          status: 401,
          detail: 'a valid publisher API key is required',
          errors: [{ field: 'header:authorization', message: 'missing or invalid API key' }],
        })
      }
      const rateKey = principal.keyId ?? principal.organizationId
      if (perKey && !perKey.admit(res, rateKey, 0, 'events')) return
      const eventType = String(req.params.eventType)
      const route = routes.get(eventType)
      if (!route) {
        return sendProblem(res, {
          title: 'Unknown event type',
          status: 404,
          detail: `no topic carries event type "${eventType}"; known types: ${knownTypes.join(', ')}`,
          knownTypes,
          errors: [{ field: 'path:eventType', message: `unknown event type "${eventType}"` }],
        })
      }
      if (route.topic.writtenBy === 'platform') {
        // e.g. partner.profile.changed: only the platform's outbox publishes it (a partner changes its
        // profile through the management API); a publisher posting it would overwrite the real one.
        return sendProblem(res, {
          title: 'Forbidden event type',
          status: 403,
          detail:
            `${eventType} is published by the platform alone (a partner's profile ` +
            `changes through PATCH /v1/organizations/{id}); nothing was accepted`,
          errors: [{ field: 'path:eventType', message: `${eventType} cannot be published through ingestion` }],
        })
      }
      const unknownQuery = queryKeys(req.originalUrl)
      if (unknownQuery.length > 0) {
        // nothing here reads a query parameter: one sent is a mistake (a misspelt option, a proxy's addition), said
        // rather than ignored, as the management API does
        return sendProblem(res, {
          title: 'Bad Request',
          status: 400,
          detail:
            `unknown query parameter${unknownQuery.length > 1 ? 's' : ''} ` +
            `${unknownQuery.map((q) => `"${q}"`).join(', ')}; this route takes none, nothing was accepted`,
          errors: unknownQuery.map((q) => ({ field: `query:${q}`, message: 'unknown query parameter' })),
        })
      }
      if (!req.is(['application/json', 'application/*+json'])) {
        res.setHeader('Accept-Post', 'application/json')
        return sendProblem(res, {
          title: 'Unsupported Media Type',
          status: 415,
          detail:
            `the body must be application/json (a JSON array of events), got ` +
            `${req.headers['content-type'] ?? 'no content type'}`,
          errors: [{ field: 'header:content-type', message: 'must be application/json' }],
        })
      }
      const key = req.get('idempotency-key')
      if (key !== undefined && !IDEMPOTENCY_KEY.test(key)) {
        return sendProblem(res, {
          title: 'Invalid Idempotency-Key',
          status: 400,
          detail: 'Idempotency-Key must be 1 to 255 visible ASCII characters',
          errors: [{ field: 'header:idempotency-key', message: 'must be 1 to 255 visible ASCII characters' }],
        })
      }
      const parsed = await readJsonBody(req, bodyLimit)
      if (!parsed.ok) {
        const e = parsed.error
        if (e.type === 'entity.too.large') {
          return sendProblem(res, {
            title: 'Content Too Large',
            status: 413,
            detail: `the body exceeds the limit of ${bodyLimit} bytes`,
            limitBytes: bodyLimit,
            errors: [{ field: 'body', message: `larger than ${bodyLimit} bytes` }],
          })
        }
        if (e.type === 'entity.parse.failed') {
          return sendProblem(res, {
            title: 'Malformed JSON',
            status: 400,
            detail: `the body is not valid JSON: ${e.message}`,
            errors: [{ field: '', message: 'not valid JSON' }],
          })
        }
        const field =
          e.type === 'charset.unsupported'
            ? 'header:content-type'
            : e.type === 'encoding.unsupported'
              ? 'header:content-encoding'
              : 'body'
        return sendProblem(res, {
          title: e.status === 415 ? 'Unsupported Media Type' : 'Bad Request',
          status: e.status,
          detail: e.message,
          errors: [{ field, message: e.message }],
        })
      }

      const body = parsed.value
      if (perKey && !perKey.admit(res, rateKey, Array.isArray(body) ? Math.max(1, body.length) : 1, 'events')) return
      const scope = principal.organizationId
      if (store && key !== undefined) {
        const outcome = await store.claim(`${scope}\u0000${key}`, fingerprint(scope, eventType, JSON.stringify(body)))
        if (outcome.kind !== 'claimed') return replay(res, outcome, key)
        const claim = outcome.claim
        let answer: StoredResponse | undefined
        try {
          answer = await handle(req, eventType, route, body, principal)
        } finally {
          if (answer && answer.status !== 503) await store.complete(claim, answer)
          else await store.release(claim).catch((err) => log.warn('idempotency key release failed', { err }))
        }
        return send(res, answer)
      }
      return send(res, await handle(req, eventType, route, body, principal))
    } catch (err) {
      if (err instanceof RateLimitedError && !res.headersSent) return sendRefusal(res, err)
      next(err)
    }
  }

  function replay(res: Response, outcome: Exclude<ClaimOutcome, { kind: 'claimed' }>, key: string): void {
    if (outcome.kind === 'reused') {
      return sendProblem(res, {
        title: 'Idempotency-Key reused',
        status: 422,
        detail: `Idempotency-Key "${key}" was used for a different request`,
        errors: [{ field: 'header:idempotency-key', message: 'already used with another body or event type' }],
      })
    }
    if (outcome.kind === 'in-progress') {
      res.setHeader('Retry-After', '1')
      return sendProblem(res, {
        title: 'Request in progress',
        status: 409,
        detail: `a request with Idempotency-Key "${key}" is still being processed`,
        errors: [{ field: 'header:idempotency-key', message: 'in progress' }],
      })
    }
    res.setHeader('Idempotent-Replayed', 'true')
    send(res, outcome.response)
  }

  /** Written directly (no ETag, no content-type negotiation: the answer is complete as stored). */
  function send(res: Response, answer: StoredResponse): void {
    for (const [k, v] of Object.entries(answer.headers)) res.setHeader(k, v)
    const body = Buffer.from(answer.body, 'utf8')
    res.setHeader('content-length', body.length)
    res.writeHead(answer.status)
    res.end(body)
  }

  function problem(p: Problem, headers: Record<string, string> = {}): StoredResponse {
    return {
      status: p.status,
      headers: { 'content-type': 'application/problem+json', ...headers },
      body: JSON.stringify({ type: 'about:blank', ...p }),
    }
  }

  async function handle(
    req: Request,
    eventType: string,
    route: EventRoute,
    body: unknown,
    principal: Principal,
  ): Promise<StoredResponse> {
    if (!Array.isArray(body)) {
      return problem({
        title: 'Invalid batch',
        status: 400,
        detail: 'the body must be a JSON array of events',
        errors: [{ field: '', message: 'must be an array of events' }],
      })
    }
    if (body.length === 0)
      return problem({
        title: 'Invalid batch',
        status: 400,
        detail: 'the batch is empty',
        errors: [{ field: '', message: 'must hold at least one event' }],
      })
    if (body.length > maxEvents) {
      return problem({
        title: 'Content Too Large',
        status: 413,
        detail: `the batch holds ${body.length} events, more than the limit of ${maxEvents}`,
        maxEvents,
        errors: [{ field: '', message: `more than ${maxEvents} events` }],
      })
    }
    const errors: Array<{ index: number; field: string; message: string }> = []
    const values: unknown[] = []
    for (let i = 0; i < body.length; i++) {
      const r = route.converter.convert(body[i], `/${i}`)
      if (r.faults.length > 0) for (const f of r.faults) errors.push({ index: i, field: f.path, message: f.message })
      else values.push(r.value)
    }
    if (errors.length > 0) {
      options.metrics?.ingestedEvents.inc({ event_type: eventType, outcome: 'rejected' }, body.length)
      const items = new Set(errors.map((e) => e.index)).size
      return problem({
        title: 'Invalid events',
        status: 400,
        detail: `${items} of ${body.length} events do not match the ${eventType} schema; nothing was accepted`,
        errors,
      })
    }
    const foreign: Array<{ index: number; field: string; message: string }> = []
    values.forEach((value, i) => {
      const m = (value as Record<string, unknown>).manufacturerId
      if (typeof m === 'string' && m !== principal.organizationId && !principal.admin)
        foreign.push({
          index: i,
          field: `/${i}/manufacturerId`,
          message: `must be the publishing organization ${principal.organizationId}, got ${m}`,
        })
    })
    if (foreign.length > 0) {
      options.metrics?.ingestedEvents.inc({ event_type: eventType, outcome: 'rejected' }, body.length)
      return problem({
        title: 'Forbidden publisher',
        status: 403,
        detail:
          `${foreign.length} of ${body.length} events name another manufacturer than ` +
          `the publishing organization; nothing was accepted`,
        errors: foreign,
      })
    }
    const topic = route.topic.name
    // One trace context per request, carried by each of its events: the create span's (tracing on),
    // else the caller's, else a new trace.
    const create = tracingOn()
      ? startSpan(`create ${topic}`, {
          kind: SpanKind.PRODUCER,
          attributes: {
            ...kafkaAttributes('create', 'create', topic),
            [ATTR.messagingBatchMessageCount]: values.length,
            [ATTR.cloudeventsEventType]: eventType,
            'distributary.publisher.id': principal.organizationId,
          },
        })
      : undefined
    const trace: TraceHeaders = create
      ? headersOf(create.spanContext())
      : (callerTrace(req.headers) ?? { traceparent: newTraceparent() })
    const { traceparent, tracestate } = trace
    const records: SourceRecord[] = new Array(values.length)
    for (let i = 0; i < values.length; i++) {
      const v = values[i] as Record<string, unknown>
      // One shape for every record (no spreads): the ingest builds one per accepted event.
      records[i] = {
        topic,
        key: route.keyOf(v),
        value: v,
        type: eventType,
        publisherId: publisherOf(v, principal),
        occurredAt: typeof v.occurredAt === 'number' ? new Date(v.occurredAt) : undefined,
        traceparent,
        tracestate,
      }
    }
    // The records now hold the events; the parsed array and the checked list are let go (the runner
    // drops each event once it is encoded), so a request waiting for the broker holds only its bytes.
    body.length = 0
    values.length = 0
    try {
      await source.offer(records)
      if (create) endSpan(create)
    } catch (err) {
      if (create) endSpan(create, err)
      const e = err as RetriableError
      log.warn('events not stored; answering 503', {
        code: e.code ?? 'RETRIABLE',
        organizationId: principal.organizationId,
        eventType,
        count: records.length,
        err,
      })
      options.metrics?.ingestedEvents.inc({ event_type: eventType, outcome: 'unavailable' }, records.length)
      const seconds = e.retryAfterMs ? String(Math.max(1, Math.ceil(e.retryAfterMs / 1000))) : retryAfter
      return problem(
        {
          title: 'Service Unavailable',
          status: 503,
          detail: `the events were not stored: ${e.message}; retry later (nothing was accepted)`,
        },
        { 'retry-after': seconds },
      )
    }
    options.metrics?.ingestedEvents.inc({ event_type: eventType, outcome: 'accepted' }, records.length)
    return {
      status: 202,
      headers: { 'content-type': 'application/json; charset=utf-8' },
      body: JSON.stringify({
        accepted: records.length,
        eventType,
        topic: route.topic.name,
        eventIds: records.map((r) => r.id),
      }),
    }
  }

  return {
    router,
    runner,
    source,
    start: () => runner.start(),
    stop: () => runner.stop(),
  }
}
