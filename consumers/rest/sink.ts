/**
 * The REST sink connector for distributors' ordering platforms and CRMs: one instance per
 * subscription, all sharing one HTTP client (one keep-alive pool per partner origin, one URL guard,
 * the webhook status rules) and one OAuth2 token cache.
 *
 * Per event: the URL from the template (placeholders URL-encoded; PUT/PATCH to
 * `.../{value.sku}` is an upsert by external id), the body from the JSONata mapping (run in the
 * worker's mapping sandbox, mapping-sandbox.ts) or the value,
 * `Idempotency-Key: <event id>` on every attempt, the auth header (OAuth2: a cached token, refreshed
 * once on a 401 and the call retried at once).
 *
 * Batching (`batch.maxEvents` > 1): concurrent events of different keys going to the same URL are
 * sent together as a JSON array (see batcher.ts: never two events of one key, so per-key order holds).
 * The Idempotency-Key of a batch is derived from its event ids (the event id itself for a batch of
 * one); a mapping that includes `eventId` gives the partner a per-item key. What an answer means:
 *  - 2xx: every event of the batch is delivered;
 *  - retriable (408/429/5xx/3xx, timeout, network) or 410/refused URL: every event of the batch
 *    fails alike, each retries on its own schedule (maybe in another batch);
 *  - rejected (other 4xx) with more than one event: the batch is re-sent one event per request, so
 *    only the events the partner rejects on their own are dead-lettered (a partner cannot tell us
 *    which item it refused in one answer).
 * Every request sends the trace context of its (first) event as traceparent (docs/tracing.md); with
 * tracing on, its span links the delivery attempts of the other events of a batch.
 */
import { createHash } from 'node:crypto'
import { PartnerRejectedError, type SyndicationError } from '../../common/errors.ts'
import { checkSinkConfig } from '../sinks.ts'
import type { PutOptions, SinkConnector, SinkContext, SinkRecord } from '../../connectors/sink/types.ts'
import {
  attemptOutcome,
  DEFAULT_HTTP_TIMEOUT_MS,
  type AttemptResult,
  type CallTrace,
  type HttpSinkClient,
} from '../http/client.ts'
import { activeContext, tracingOn, type Context } from '../../common/tracing.ts'
import { MicroBatcher } from './batcher.ts'
import { restSinkProblems, type RestAuth, type RestSinkConfig } from './config.ts'
import { BodyMapping, eventBody } from './mapping.ts'
import type { MappingSandbox } from './mapping-sandbox.ts'
import { TokenError, type OAuth2Credentials, type OAuth2TokenCache } from './oauth2.ts'
import { parseUrlTemplate, renderUrl, type UrlTemplate } from './template.ts'

interface Prepared {
  record: SinkRecord
  url: string
  body: string
  /** Tracing on: the delivery attempt the event is in (a batch is sent from a timer, outside of it). */
  attempt?: Context
}

export class RestSink implements SinkConnector<RestSinkConfig> {
  readonly kind = 'sink' as const
  #config?: RestSinkConfig
  #ctx?: SinkContext
  #template?: UrlTemplate
  #mapping: BodyMapping | undefined
  #baseHeaders: Record<string, string> = {}
  #staticAuth: [name: string, value: string] | undefined
  #oauth: OAuth2Credentials | undefined
  #batcher: MicroBatcher<Prepared> | undefined

  constructor(
    private readonly client: HttpSinkClient,
    private readonly tokens: OAuth2TokenCache,
    /** Where body mappings run (shared by the worker's REST subscriptions). */
    private readonly mappings: MappingSandbox,
  ) {}

  /** Events per request at most (the subscription's batchSize; 1 without batching). */
  get batchSize(): number {
    return this.#config?.batch?.maxEvents ?? 1
  }

  async start(config: RestSinkConfig, ctx: SinkContext): Promise<void> {
    const problems = restSinkProblems({ ...config, batch: undefined })
    if (
      config.batch &&
      (!Number.isInteger(config.batch.maxEvents) ||
        config.batch.maxEvents < 1 ||
        !Number.isInteger(config.batch.maxWaitMs) ||
        config.batch.maxWaitMs < 0)
    ) {
      problems.push({ field: 'batch', message: 'maxEvents must be an integer >= 1 and maxWaitMs an integer >= 0' })
    }
    checkSinkConfig('REST', problems, ctx)
    this.#config = config
    this.#ctx = ctx
    this.#template = parseUrlTemplate(config.url)
    this.#mapping =
      config.bodyMapping !== undefined
        ? new BodyMapping(config.bodyMapping, this.mappings, ctx.subscriptionId)
        : undefined
    if (this.#mapping) this.mappings.warm()
    this.#baseHeaders = {
      'content-type': 'application/json',
      accept: 'application/json',
      ...lowerKeys(config.headers ?? {}),
    }
    const auth: RestAuth = config.auth ?? { type: 'none' }
    this.#oauth = auth.type === 'oauth2' ? auth : undefined
    this.#staticAuth = staticAuthHeader(auth)
    this.#batcher?.close()
    this.#batcher =
      config.batch && config.batch.maxEvents > 1
        ? new MicroBatcher(config.batch.maxEvents, config.batch.maxWaitMs, (url, items) => this.#sendBatch(url, items))
        : undefined
  }

  async put(records: SinkRecord[], options: PutOptions = {}): Promise<void> {
    if (!this.#config || !this.#ctx) throw new Error('RestSink.put called before start')
    for (const record of records) {
      const prepared = await this.#prepare(record, options.signal)
      if (this.#batcher) {
        await this.#batcher.add(prepared.url, prepared, options.signal)
        continue
      }
      const [error] = await this.#send(prepared.url, [prepared], false, options.signal)
      if (error) throw error
    }
  }

  async stop(): Promise<void> {
    this.#batcher?.close()
    this.#batcher = undefined
    this.#config = undefined
  }

  /** URL and body of one event; a DataError (dead letter) when the event cannot be mapped. */
  async #prepare(record: SinkRecord, signal?: AbortSignal): Promise<Prepared> {
    try {
      const prepared: Prepared = {
        record,
        url: renderUrl(this.#template!, record),
        body: await eventBody(record, this.#mapping, signal),
      }
      if (tracingOn()) prepared.attempt = activeContext()
      return prepared
    } catch (err) {
      if (err instanceof Error && 'context' in err)
        Object.assign((err as SyndicationError).context, this.#where(record))
      throw err
    }
  }

  #where(record: SinkRecord): Record<string, unknown> {
    return {
      subscriptionId: this.#ctx?.subscriptionId,
      topic: record.topic,
      partition: record.partition,
      offset: record.offset,
      eventId: record.eventId,
    }
  }

  /** One batch; a rejected batch of several events is re-sent one event per request. */
  async #sendBatch(url: string, items: Prepared[]): Promise<Array<SyndicationError | undefined>> {
    const outcomes = await this.#send(url, items, true)
    if (items.length > 1 && outcomes[0] instanceof PartnerRejectedError) {
      this.#ctx?.logger.info('batch rejected: re-sending its events one per request', {
        subscriptionId: this.#ctx.subscriptionId,
        events: items.length,
        status: outcomes[0].status,
      })
      return Promise.all(items.map(async (item) => (await this.#send(url, [item], true))[0]))
    }
    return outcomes
  }

  /**
   * One request carrying `items` (an array body when `asArray`), with the OAuth2 refresh on 401.
   * Reports one attempt per event; answers one outcome per event (all alike).
   */
  async #send(
    url: string,
    items: Prepared[],
    asArray: boolean,
    signal?: AbortSignal,
  ): Promise<Array<SyndicationError | undefined>> {
    const config = this.#config!
    const timeoutMs = config.timeoutMs ?? DEFAULT_HTTP_TIMEOUT_MS
    const first = items[0]!.record.eventId
    const body = asArray ? `[${items.map((i) => i.body).join(',')}]` : items[0]!.body
    const idempotencyKey = items.length === 1 ? first : batchKey(items)
    let result: AttemptResult | undefined
    for (let attempt = 0; attempt < 2; attempt++) {
      const headers: Record<string, string> = { ...this.#baseHeaders, 'idempotency-key': idempotencyKey }
      let token: string | undefined
      if (this.#oauth) {
        try {
          token = await this.tokens.token(this.#oauth, timeoutMs, first)
        } catch (err) {
          if (!(err instanceof TokenError)) throw err
          // no report: a refusal remembered from an earlier call, reported as such
          const report = err.report ?? {
            eventId: first,
            target: this.#oauth.tokenUrl,
            startedAt: Date.now(),
            durationMs: 0,
            outcome: attemptOutcome(err.error),
            code: err.error.code,
            message: `${err.error.message} (remembered, not asked again)`,
          }
          return this.#settle(items, { report, error: err.error })
        }
        headers.authorization = `Bearer ${token}`
      } else if (this.#staticAuth) headers[this.#staticAuth[0]] = this.#staticAuth[1]
      result = await this.client.call(
        { method: config.method, url, headers, body, timeoutMs, trace: callTrace(items) },
        first,
        signal,
      )
      if (result.report.status === 401 && token !== undefined && attempt === 0) {
        // the token was revoked or expired early: one fresh token, one immediate retry
        this.tokens.invalidate(this.#oauth!, token)
        this.#report(items, {
          ...result.report,
          outcome: 'retriable',
          message: 'endpoint answered 401: access token refreshed, request retried at once',
        })
        continue
      }
      break
    }
    return this.#settle(items, result!)
  }

  #settle(items: Prepared[], result: AttemptResult): Array<SyndicationError | undefined> {
    this.#report(items, result.report)
    const error = result.error
    if (error)
      Object.assign(
        error.context,
        items.length === 1
          ? this.#where(items[0]!.record)
          : { subscriptionId: this.#ctx?.subscriptionId, batch: items.length },
      )
    return items.map(() => error)
  }

  #report(items: Prepared[], report: AttemptResult['report']): void {
    const onAttempt = this.#ctx?.onAttempt
    if (!onAttempt) return
    for (const item of items)
      onAttempt(item.record.eventId === report.eventId ? report : { ...report, eventId: item.record.eventId })
  }
}

/**
 * The trace context a request carrying `items` continues: their delivery attempts (tracing on), else the first event's
 * traceparent.
 */
function callTrace(items: Prepared[]): CallTrace {
  const traceparent = items[0]!.record.headers.traceparent
  if (items[0]!.attempt === undefined) return { traceparent }
  return { traceparent, attempts: items.flatMap((i) => i.attempt ?? []) }
}

function lowerKeys(h: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {}
  for (const k in h) out[k.toLowerCase()] = h[k]!
  return out
}

function staticAuthHeader(auth: RestAuth): [string, string] | undefined {
  switch (auth.type) {
    case 'bearer':
      return ['authorization', `Bearer ${auth.token}`]
    case 'basic':
      return ['authorization', 'Basic ' + Buffer.from(`${auth.username}:${auth.password}`).toString('base64')]
    case 'header':
      return [auth.headerName.toLowerCase(), auth.headerValue]
    default:
      return undefined
  }
}

/** The idempotency key of a batch: stable for the same events in the same order. */
function batchKey(items: Prepared[]): string {
  return (
    'batch-' +
    createHash('sha256')
      .update(items.map((i) => i.record.eventId).join('\n'))
      .digest('base64url')
  )
}
