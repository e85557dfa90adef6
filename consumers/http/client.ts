/**
 * The process-wide HTTP side of every HTTP sink (webhook, REST): one undici Agent (a keep-alive Pool
 * per origin) shared by every subscription, the injected URL guard, and the rules that turn an HTTP
 * answer or a network failure into an error class of common/errors.ts.
 *
 * The guard is pinned to the sockets: the Agent resolves host names through the guard's `lookup`
 * when it opens a connection (every new connection, also after a kept-alive one expired), so a
 * socket only ever connects to an address the guard approved at that moment; there is no earlier
 * resolution that DNS rebinding could make disagree with the connect. Each call checks the URL's
 * form and an IP-address host (no DNS; net never calls `lookup` for an IP address).
 *  - refused by the guard (form, address): EndpointDisabledError('url-refused'); the runtime disables
 *    the subscription and holds its records;
 *  - the host does not resolve (NXDOMAIN, DNS down, a timeout): RetriableError, retried on schedule.
 *
 * The origin's connections are shared fairly between the subscriptions calling it (fair-share.ts):
 * a call waits for its lane's share instead of queueing in the pool behind another subscription's.
 *
 * Status rules (Standard Webhooks, Svix), the same for every HTTP sink:
 *  - 2xx: delivered.
 *  - 3xx: a failure, never followed (a redirect target would bypass the URL guard). Retriable, as
 *    Svix does: a redirect usually means a moved or http->https endpoint that the partner fixes by
 *    updating the URL; retrying keeps the events until then, and an endpoint failing for longer than
 *    the subscription allows is disabled anyway. Dead-lettering at once would lose the ordering of
 *    the whole backlog for a configuration slip.
 *  - 410 Gone: the partner retired the endpoint: EndpointDisabledError('gone'); the runtime disables
 *    the subscription and holds its records.
 *  - 408, 429, 5xx: RetriableError, with the Retry-After header (seconds or HTTP date) honoured.
 *  - other 4xx: PartnerRejectedError (dead letter, no retry).
 *  - timeouts, refused or reset connections, DNS and TLS failures: RetriableError.
 *
 * A call that carries events (`HttpCall.trace`) sends their trace context as `traceparent`
 * (docs/tracing.md): with tracing on, that of a CLIENT span of the call, a child of the delivery
 * attempt; off, the event's own, as it came. tracestate is not sent: its entries belong to the
 * publisher's tracing vendors, and the partner is another organization.
 */
import { Agent, type Dispatcher } from 'undici'
import {
  DataError,
  EndpointDisabledError,
  PartnerRejectedError,
  RetriableError,
  SyndicationError,
  UrlRefusedError,
} from '../../common/errors.ts'
import type { UrlGuard } from '../../common/url-guard.ts'
import { parseRetryAfter } from '../../connectors/retry.ts'
import type { AttemptReport } from '../../connectors/sink/types.ts'
import {
  endSpan,
  headersOf,
  linkOf,
  SpanKind,
  startSpan,
  tracingOn,
  type Context,
  type Span,
} from '../../common/tracing.ts'
import { FairShare } from './fair-share.ts'

export interface HttpSinkClientOptions {
  /** The SSRF guard (common/url-guard.ts): its `lookup` is what the Agent's sockets connect through. */
  guard: UrlGuard
  /** Keep-alive connections per origin (shared by all subscriptions calling that origin). */
  connectionsPerOrigin?: number
  keepAliveTimeoutMs?: number
  connectTimeoutMs?: number
  /** How much of an answer is kept for the delivery log. */
  excerptBytes?: number
  userAgent?: string
  now?: () => number
}

/** One HTTP call of a sink. Headers must already hold everything (auth, idempotency key...). */
export interface HttpCall {
  method: 'POST' | 'PUT' | 'PATCH'
  url: string
  headers: Record<string, string>
  /** Text is sent as UTF-8; a Buffer (e.g. one body shared by many subscriptions) as is. */
  body: string | Buffer
  /** Time allowed for the answer headers, and between answer body chunks, in ms (precise to about 1 s). */
  timeoutMs: number
  /** Keep the body of a 2xx answer (up to `maxBodyBytes`) in `AttemptResult.body`, e.g. an OAuth token. */
  keepBody?: boolean
  /** The events the call carries: the trace context it continues (absent: none is sent, e.g. a token request). */
  trace?: CallTrace
}

export interface CallTrace {
  /** The (first) event's traceparent header: what the partner receives while tracing is off. */
  traceparent: string | undefined
  /**
   * Tracing on: the delivery attempts the call carries (the first one the parent of its span, the
   * others linked; a REST batch). Absent: the active context (the delivery attempt running it).
   */
  attempts?: readonly Context[]
}

export interface AttemptResult {
  report: AttemptReport
  /** Undefined when delivered. */
  error?: SyndicationError
  /** The 2xx answer's body when the call asked for it (`keepBody`). Never logged: it may hold a secret. */
  body?: string
}

/** undici's timeout timers tick about every 0.5 s: shorter timeouts would not be honoured precisely. */
export const MIN_HTTP_TIMEOUT_MS = 1000
export const MAX_HTTP_TIMEOUT_MS = 120_000
export const DEFAULT_HTTP_TIMEOUT_MS = 15_000

/** Answers beyond this are not read to the end: the connection is dropped instead of reused. */
const DRAIN_LIMIT_BYTES = 64 * 1024

/** Node or undici error codes that say "the call could not be made", not "our code is wrong". */
const PROGRAMMING_CODES = new Set([
  'UND_ERR_INVALID_ARG',
  'UND_ERR_NOT_SUPPORTED',
  'ERR_INVALID_ARG_TYPE',
  'ERR_INVALID_ARG_VALUE',
  'ERR_INVALID_URL',
])

export class HttpSinkClient {
  readonly #dispatcher: Dispatcher
  readonly #fair: FairShare
  readonly #guard: UrlGuard
  readonly #excerptBytes: number
  protected readonly userAgent: string
  protected readonly now: () => number
  /**
   * Origin and path of each URL called, once its form passed the guard: a call neither parses its
   * URL nor asks the guard again (the form and an IP-address host cannot change; host names are
   * checked by the guard's lookup at every connect). Refusals are not kept.
   */
  readonly #targets = new Map<string, { origin: string; path: string }>()

  constructor(options: HttpSinkClientOptions, defaultUserAgent = 'Distributary/0.1') {
    this.#guard = options.guard
    this.#excerptBytes = options.excerptBytes ?? 1024
    this.userAgent = options.userAgent ?? defaultUserAgent
    this.now = options.now ?? Date.now
    const connections = options.connectionsPerOrigin ?? 32
    this.#fair = new FairShare(connections)
    this.#dispatcher = new Agent({
      connections,
      keepAliveTimeout: options.keepAliveTimeoutMs ?? 30_000,
      connect: { timeout: options.connectTimeoutMs ?? 10_000, lookup: options.guard.lookup },
    })
  }

  /** One attempt: guard, call, classify. Never throws. `eventId` names the attempt in its report. */
  async call(call: HttpCall, eventId: string, signal?: AbortSignal): Promise<AttemptResult> {
    if (call.trace === undefined) return this.#call(call, eventId, signal)
    if (!tracingOn()) {
      if (call.trace.traceparent !== undefined) call.headers.traceparent = call.trace.traceparent
      return this.#call(call, eventId, signal)
    }
    const span = clientSpan(call, call.trace)
    call.headers.traceparent = headersOf(span.spanContext()).traceparent
    const result = await this.#call(call, eventId, signal)
    if (result.report.status !== undefined) span.setAttribute('http.response.status_code', result.report.status)
    endSpan(span, result.error)
    return result
  }

  async #call(call: HttpCall, eventId: string, signal?: AbortSignal): Promise<AttemptResult> {
    const startedAt = this.now()
    const t0 = performance.now()
    const report: AttemptReport = { eventId, target: call.url, startedAt, durationMs: 0, outcome: 'failed' }
    let target: { origin: string; path: string }
    try {
      target = this.#target(call.url)
    } catch (err) {
      return this.#finish(report, t0, classifyFailure(err, { url: call.url, eventId }))
    }
    if (call.headers['user-agent'] === undefined) call.headers['user-agent'] = this.userAgent
    // The timeout is undici's headersTimeout/bodyTimeout (its timers tick about every 0.5 s, so the
    // bound holds to within about a second). No AbortSignal is made per request (one per request cost
    // more CPU than the rest of the call, measured in bench/fanout): the caller's signal, one per
    // subscription's run, is handed on, so that a subscription handed over to another worker (or
    // fenced, its leases not renewed) has no call left at the partner.
    let acquired = false
    try {
      if (signal?.aborted) throw signal.reason
      // a fair share of the origin's connections (fair-share.ts): the lane is the subscription's run signal
      const wait = this.#fair.acquire(target.origin, signal, signal)
      if (wait !== undefined) await wait
      acquired = true
      const res = await this.#dispatcher.request({
        origin: target.origin,
        path: target.path,
        method: call.method,
        headers: call.headers,
        body: call.body,
        headersTimeout: call.timeoutMs,
        bodyTimeout: call.timeoutMs,
        ...(signal ? { signal } : {}),
      })
      report.status = res.statusCode
      if (res.statusCode >= 200 && res.statusCode < 300) {
        // delivered: the answer is not kept (the delivery log needs excerpts of failures), only drained
        if (call.keepBody) {
          const body = await readExcerpt(res.body, DRAIN_LIMIT_BYTES)
          return { ...this.#finish(report, t0), body }
        }
        await res.body.dump({ limit: DRAIN_LIMIT_BYTES })
        return this.#finish(report, t0)
      }
      report.responseExcerpt = await readExcerpt(res.body, this.#excerptBytes)
      return this.#finish(
        report,
        t0,
        classifyStatus(
          res.statusCode,
          res.headers,
          { url: call.url, eventId, excerpt: report.responseExcerpt },
          this.now(),
        ),
      )
    } catch (err) {
      return this.#finish(report, t0, classifyFailure(err, { url: call.url, eventId }, signal))
    } finally {
      if (acquired) this.#fair.release(target.origin, signal)
    }
  }

  /**
   * The URL split as undici wants it (what undici.request would parse on every call), its form checked by the guard.
   */
  #target(url: string): { origin: string; path: string } {
    let t = this.#targets.get(url)
    if (t === undefined) {
      const u = this.#guard.checkForm(url)
      t = { origin: u.origin, path: u.pathname + u.search }
      if (this.#targets.size >= 10_000) this.#targets.clear()
      this.#targets.set(url, t)
    }
    return t
  }

  // a method, not a closure per call: the hot path allocates as little as it can
  #finish(report: AttemptReport, t0: number, error?: SyndicationError): AttemptResult {
    report.durationMs = Math.round((performance.now() - t0) * 10) / 10
    if (error) {
      report.outcome = attemptOutcome(error)
      report.code = error.code
      report.message = error.message
      return { report, error }
    }
    report.outcome = 'delivered'
    return { report }
  }

  async close(): Promise<void> {
    await this.#dispatcher.close()
  }
}

/**
 * The CLIENT span of one call (OpenTelemetry's HTTP client conventions; the query string is left out: it may hold a
 * credential).
 */
function clientSpan(call: HttpCall, trace: CallTrace): Span {
  const attributes: Record<string, string | number> = { 'http.request.method': call.method }
  try {
    const u = new URL(call.url)
    Object.assign(attributes, {
      'server.address': u.hostname,
      'server.port': Number(u.port || (u.protocol === 'https:' ? 443 : 80)),
      'url.full': `${u.origin}${u.pathname}`,
    })
  } catch {
    // a URL the guard refuses anyway: the span says so through its error
  }
  const [first, ...others] = trace.attempts ?? []
  const links = others.flatMap((c) => linkOf(c) ?? [])
  return startSpan(call.method, { kind: SpanKind.CLIENT, attributes, ...(links.length > 0 ? { links } : {}) }, first)
}

/** The delivery-log outcome of a classified error. */
export function attemptOutcome(error: SyndicationError): AttemptReport['outcome'] {
  return error instanceof EndpointDisabledError
    ? 'disabled'
    : error.retriable
      ? 'retriable'
      : error instanceof PartnerRejectedError
        ? 'rejected'
        : 'failed'
}

/** Undefined for 2xx, else the error that says what the runtime does next. */
export function classifyStatus(
  status: number,
  headers: Record<string, string | string[] | undefined>,
  context: Record<string, unknown> = {},
  now = Date.now(),
): SyndicationError | undefined {
  if (status >= 200 && status < 300) return undefined
  const ctx = { ...context, status }
  if (status >= 300 && status < 400) {
    const location = headers.location
    return new RetriableError(
      `endpoint answered ${status} (redirects are not followed; update the sink URL)`,
      undefined,
      { ...ctx, location },
    )
  }
  if (status === 410)
    return new EndpointDisabledError('gone', 'endpoint answered 410 Gone: the partner retired it', ctx)
  if (status === 408 || status === 429 || status >= 500) {
    return new RetriableError(`endpoint answered ${status}`, parseRetryAfter(headers['retry-after'], now), ctx)
  }
  return new PartnerRejectedError(`endpoint rejected the event with ${status}`, status, ctx)
}

/**
 * A call that produced no HTTP answer: network, DNS and timeouts are retriable, our own bugs are not,
 * and a URL or address the guard refused (before the call, or when the socket resolved the host)
 * disables the endpoint.
 */
export function classifyFailure(
  err: unknown,
  context: Record<string, unknown> = {},
  signal?: AbortSignal,
): SyndicationError {
  if (err instanceof UrlRefusedError)
    return new EndpointDisabledError(
      'url-refused',
      `URL refused by the URL guard: ${err.message}`,
      { ...context, ...err.context },
      { cause: err },
    )
  if (err instanceof SyndicationError) return err
  if (signal?.aborted)
    return new RetriableError(
      'delivery aborted (subscription stopped)',
      undefined,
      { ...context, aborted: true },
      { cause: err },
    )
  const code = (err as { code?: unknown })?.code
  const message = err instanceof Error ? err.message : String(err)
  if (typeof code === 'string' && !PROGRAMMING_CODES.has(code)) {
    const timeout = code.endsWith('TIMEOUT') || code === 'ETIMEDOUT'
    return new RetriableError(
      timeout ? `endpoint timed out (${code})` : `endpoint unreachable (${code}: ${message})`,
      undefined,
      { ...context, errorCode: code, timeout },
      { cause: err },
    )
  }
  return new DataError(`HTTP call failed: ${message}`, { ...context, errorCode: code }, { cause: err })
}

/** The first `limit` bytes of an answer as text; the rest is drained (up to a bound) so the connection is reused. */
async function readExcerpt(
  body: AsyncIterable<Buffer> & { destroy(err?: Error): unknown },
  limit: number,
): Promise<string> {
  const kept: Buffer[] = []
  let keptBytes = 0
  let seen = 0
  for await (const chunk of body) {
    if (keptBytes < limit) {
      const part = chunk.subarray(0, limit - keptBytes)
      kept.push(part)
      keptBytes += part.length
    }
    seen += chunk.length
    if (seen > DRAIN_LIMIT_BYTES) {
      body.destroy()
      break
    }
  }
  return Buffer.concat(kept).toString('utf8')
}
