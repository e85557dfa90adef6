/**
 * Distributed tracing with OpenTelemetry (docs/tracing.md): spans from an ingestion request through
 * Kafka to every delivery attempt, the W3C trace context carried in each event's Kafka headers
 * (`traceparent`, `tracestate`) and sent on to partners (`traceparent`).
 *
 * Off unless an exporter is configured (`tracingFromConfig`). Off, nothing of the SDK is loaded and
 * no context manager runs (AsyncLocalStorage would tax every promise of the process): the hot paths
 * ask `tracingOn()`, one boolean, and go their old way. An event's trace context still travels when
 * off: ingestion keeps the caller's traceparent (or makes a new one), the Kafka headers carry it and
 * partners receive it as it came, so a publisher's trace and a partner's meet even where the
 * platform records nothing in between.
 *
 * On, spans are parented through the context manager (AsyncLocalStorage) while a span's work runs
 * (`runInSpan`), so that the code below it (a sink, the HTTP client, the logger's trace_id) finds it
 * with `context.active()`; the links between processes are the W3C headers only.
 */
import { randomUUID } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import {
  context,
  diag,
  DiagLogLevel,
  isSpanContextValid,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
  type Attributes,
  type Context,
  type Span,
  type SpanContext,
  type SpanOptions,
  type TextMapGetter,
  type Tracer,
} from '@opentelemetry/api'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import type { Sampler, SpanProcessor } from '@opentelemetry/sdk-trace-base'
import { parseKeyValueList, type AppConfig } from '../config/index.ts'
import { SyndicationError } from './errors.ts'
import type { Logger } from './logger.ts'
import { PROJECT_ROOT } from './paths.ts'

export { ROOT_CONTEXT, SpanKind, type Context, type Span }

/**
 * Attribute names of OpenTelemetry's semantic conventions still marked incubating (messaging,
 * CloudEvents), copied as OpenTelemetry advises rather than imported from the package's incubating
 * entry point, which may change them in any minor release. The stable ones (HTTP, URL, server,
 * error.type) come from @opentelemetry/semantic-conventions.
 */
export const ATTR = {
  messagingSystem: 'messaging.system',
  messagingOperationType: 'messaging.operation.type',
  messagingOperationName: 'messaging.operation.name',
  messagingDestinationName: 'messaging.destination.name',
  messagingDestinationPartitionId: 'messaging.destination.partition.id',
  messagingKafkaOffset: 'messaging.kafka.offset',
  messagingMessageId: 'messaging.message.id',
  messagingBatchMessageCount: 'messaging.batch.message_count',
  cloudeventsEventId: 'cloudevents.event_id',
  cloudeventsEventType: 'cloudevents.event_type',
  cloudeventsEventSource: 'cloudevents.event_source',
} as const

/** The messaging attributes of a Kafka operation: `create` and `send` (producing), `process` (delivering). */
export function kafkaAttributes(
  type: 'create' | 'send' | 'process',
  name: string,
  topic: string | undefined,
): Attributes {
  return {
    [ATTR.messagingSystem]: 'kafka',
    [ATTR.messagingOperationType]: type,
    [ATTR.messagingOperationName]: name,
    ...(topic !== undefined ? { [ATTR.messagingDestinationName]: topic } : {}),
  }
}

const propagator = new W3CTraceContextPropagator()
type Carrier = Record<string, string | string[] | undefined>
const getter: TextMapGetter<Carrier> = {
  get: (carrier, key) => carrier[key],
  keys: (carrier) => Object.keys(carrier),
}

interface State {
  tracer: Tracer
  refs: number
  shutdown(): Promise<void>
  forceFlush(): Promise<void>
}
let state: State | undefined

/** True while spans are recorded (startTracing ran and is not shut down). */
export function tracingOn(): boolean {
  return state !== undefined
}

/** The trace context of W3C headers (traceparent, tracestate), over `parent`; `parent` when none is valid. */
export function extractContext(headers: Carrier, parent: Context = ROOT_CONTEXT): Context {
  return propagator.extract(parent, headers, getter)
}

const eventContexts = new WeakMap<object, Context>()

/**
 * The trace context of an event's Kafka headers, read once per headers object (every subscription
 * delivering the event shares it).
 */
export function eventContext(headers: Record<string, string>): Context {
  let ctx = eventContexts.get(headers)
  if (ctx === undefined) eventContexts.set(headers, (ctx = extractContext(headers)))
  return ctx
}

export interface TraceHeaders {
  traceparent: string
  tracestate?: string
}

/** The W3C headers of a span context (version 00). */
export function headersOf(sc: SpanContext): TraceHeaders {
  const traceparent = `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & TraceFlags.SAMPLED) !== 0 ? '01' : '00'}`
  const tracestate = sc.traceState?.serialize()
  return tracestate ? { traceparent, tracestate } : { traceparent }
}

/** The caller's trace context, normalized (undefined: none, or not a valid one). */
export function callerTrace(headers: Carrier): TraceHeaders | undefined {
  if (headers.traceparent === undefined) return undefined
  const sc = trace.getSpanContext(extractContext(headers))
  return sc && isSpanContextValid(sc) ? headersOf(sc) : undefined
}

/**
 * A span (tracing on only: callers check `tracingOn()` first), a child of `parent` (default: the
 * active context). Never the active span by itself: see `runInSpan`.
 */
export function startSpan(name: string, options: SpanOptions, parent: Context = context.active()): Span {
  if (!state) throw new Error('startSpan called while tracing is off (check tracingOn() first)')
  return state.tracer.startSpan(name, options, parent)
}

/** Runs `fn` with `span` active (over `parent`): what `fn` starts, logs or calls out continues it. */
export function runInSpan<T>(span: Span, fn: () => T, parent: Context = context.active()): T {
  return context.with(trace.setSpan(parent, span), fn)
}

/**
 * Ends a span, as failed when `error` is given: status ERROR with its message, `error.type` its code
 * (common/errors.ts) or class name. An unexpected error (no SyndicationError) is also recorded as
 * an exception event, with its stack.
 */
export function endSpan(span: Span, error?: unknown): void {
  if (error !== undefined) {
    const message = error instanceof Error ? error.message : String(error)
    span.setStatus({ code: SpanStatusCode.ERROR, message })
    if (error instanceof SyndicationError)
      span.setAttributes({ 'error.type': error.code, 'distributary.retriable': error.retriable })
    else {
      span.setAttribute('error.type', error instanceof Error ? error.name : 'Error')
      if (error instanceof Error) span.recordException(error)
    }
  }
  span.end()
}

/** The context running now: its span is the active one (the root while tracing is off). */
export function activeContext(): Context {
  return context.active()
}

/** The span running now (undefined when tracing is off or none is active). */
export function activeSpan(): Span | undefined {
  return state ? trace.getSpan(context.active()) : undefined
}

/** A link to the span of `ctx` (e.g. another request's events in one produce batch); undefined when it has none. */
export function linkOf(ctx: Context): { context: SpanContext } | undefined {
  const sc = trace.getSpanContext(ctx)
  return sc && isSpanContextValid(sc) ? { context: sc } : undefined
}

// ------------------------------------------------------------------ HTTP servers

/** What a server span needs of a request and its answer (node's IncomingMessage and ServerResponse have it). */
export interface ServerExchange {
  req: { method?: string; url?: string; headers: Carrier; socket: { remoteAddress?: string; localPort?: number } }
  res: { statusCode: number; once(event: 'close', listener: () => void): unknown }
}

/**
 * Runs a request handler in a SERVER span (OpenTelemetry's HTTP server conventions) continuing the
 * caller's W3C headers; the span ends when the answer is sent (or the connection closes), as failed
 * on a 5xx. `route` is the low-cardinality path template, e.g. /v1/events/{eventType}.
 */
export function inServerSpan<T>(x: ServerExchange, route: string, attributes: Attributes, fn: () => T): T {
  const method = x.req.method ?? 'GET'
  const parent = extractContext(x.req.headers)
  const url = x.req.url ?? '/'
  const query = url.indexOf('?')
  const span = startSpan(
    `${method} ${route}`,
    {
      kind: SpanKind.SERVER,
      attributes: {
        'http.request.method': method,
        'http.route': route,
        'url.path': query >= 0 ? url.slice(0, query) : url,
        'url.scheme': 'http',
        ...(x.req.socket.localPort !== undefined ? { 'server.port': x.req.socket.localPort } : {}),
        ...(x.req.socket.remoteAddress !== undefined ? { 'client.address': x.req.socket.remoteAddress } : {}),
        ...(typeof x.req.headers['user-agent'] === 'string'
          ? { 'user_agent.original': x.req.headers['user-agent'] }
          : {}),
        ...attributes,
      },
    },
    parent,
  )
  x.res.once('close', () => {
    const status = x.res.statusCode
    span.setAttribute('http.response.status_code', status)
    if (status >= 500) span.setAttribute('error.type', String(status)).setStatus({ code: SpanStatusCode.ERROR })
    span.end()
  })
  return runInSpan(span, fn, parent)
}

// ------------------------------------------------------------------ set-up

export interface TracingOptions {
  /** Where finished spans go: the platform's batch processor to OTLP, a test's in-memory exporter. */
  spanProcessors: SpanProcessor[]
  /** service.name (default distributary). */
  serviceName?: string
  /** More resource attributes of every span. */
  resourceAttributes?: Attributes
  /** Default: parent-based, always on for new traces. */
  sampler?: Sampler
  /** The last export at shutdown failed (default: ignored). */
  onShutdownError?: (err: unknown) => void
}

export interface Tracing {
  /** Exports the finished spans now. */
  forceFlush(): Promise<void>
  /** Exports what is left and turns tracing off (when no other starter still holds it). */
  shutdown(): Promise<void>
}

/**
 * Turns tracing on in this process: the SDK's tracer provider and the AsyncLocalStorage context
 * manager, registered globally (OpenTelemetry's API is process-wide). Tracing already on (a second
 * platform in one process, as tests start them) is shared: the first configuration stays, and it
 * turns off at the last `shutdown`.
 */
export async function startTracing(options: TracingOptions): Promise<Tracing> {
  if (!state) {
    // loaded here, not at the top: a process without tracing never loads the SDK
    const { NodeTracerProvider, ParentBasedSampler, AlwaysOnSampler } = await import('@opentelemetry/sdk-trace-node')
    const { resourceFromAttributes } = await import('@opentelemetry/resources')
    if (!state) {
      const provider = new NodeTracerProvider({
        resource: resourceFromAttributes({
          'service.name': options.serviceName ?? 'distributary',
          'service.version': VERSION,
          ...options.resourceAttributes,
        }),
        sampler: options.sampler ?? new ParentBasedSampler({ root: new AlwaysOnSampler() }),
        spanProcessors: options.spanProcessors,
      })
      // the global propagator stays unset: the W3C headers are read and written here, with our own
      provider.register({ propagator: null })
      state = {
        tracer: provider.getTracer('distributary', VERSION),
        refs: 0,
        forceFlush: () => provider.forceFlush(),
        shutdown: async () => {
          state = undefined
          try {
            await provider.shutdown()
          } catch (err) {
            // the last export failed (a collector away): reported, never a failed shutdown of the process
            options.onShutdownError?.(err)
          } finally {
            trace.disable()
            context.disable()
          }
        },
      }
    }
  }
  const s = state!
  s.refs++
  let held = true
  return {
    forceFlush: () => s.forceFlush(),
    async shutdown() {
      if (!held) return
      held = false
      if (--s.refs === 0 && state === s) await s.shutdown()
    },
  }
}

/** The OTLP URL spans are posted to, or undefined when tracing is off (docs/tracing.md). */
export function tracesUrl(config: AppConfig): string | undefined {
  const t = config.tracing
  const exporter = t.exporter !== '' ? t.exporter : t.endpoint !== '' || t.tracesEndpoint !== '' ? 'otlp' : 'none'
  if (exporter === 'none') return undefined
  if (t.tracesEndpoint !== '') return t.tracesEndpoint
  // OTEL_EXPORTER_OTLP_ENDPOINT is a base: the signal's path is appended (OpenTelemetry's rule)
  return (t.endpoint !== '' ? t.endpoint : 'http://localhost:4318').replace(/\/?$/, '/') + 'v1/traces'
}

/**
 * Tracing as configured (the tracing.* settings: OpenTelemetry's variables), or undefined when it is
 * off. Spans leave through a batch processor to the OTLP/HTTP exporter (JSON); the exporter's own
 * failures (a collector away) are logged at most once a minute with their count.
 */
export async function tracingFromConfig(config: AppConfig, logger: Logger): Promise<Tracing | undefined> {
  const url = tracesUrl(config)
  if (url === undefined) return undefined
  const t = config.tracing
  const { BatchSpanProcessor } = await import('@opentelemetry/sdk-trace-node')
  const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http')
  const log = logger.child({ component: 'tracing' })
  installDiagLogger(log)
  const exporter = new OTLPTraceExporter({ url, headers: parseKeyValueList(t.headers) })
  const tracing = await startTracing({
    spanProcessors: [new BatchSpanProcessor(exporter)],
    serviceName: t.serviceName,
    resourceAttributes: { 'service.instance.id': randomUUID(), ...parseKeyValueList(t.resourceAttributes) },
    sampler: await samplerOf(t.sampler, t.samplerArg),
    onShutdownError: (err) =>
      log.warn('tracing: the last spans were not exported at shutdown', { code: 'RETRIABLE', err }),
  })
  const shown = new URL(url)
  logger.info('tracing on: spans are exported over OTLP/HTTP', {
    endpoint: `${shown.origin}${shown.pathname}`,
    sampler: t.sampler,
    ...(t.sampler.endsWith('traceidratio') ? { ratio: t.samplerArg } : {}),
  })
  return tracing
}

async function samplerOf(name: AppConfig['tracing']['sampler'], ratio: number): Promise<Sampler> {
  const { AlwaysOffSampler, AlwaysOnSampler, ParentBasedSampler, TraceIdRatioBasedSampler } =
    await import('@opentelemetry/sdk-trace-node')
  const [parentBased, root] = name.startsWith('parentbased_')
    ? [true, name.slice('parentbased_'.length)]
    : [false, name]
  const sampler =
    root === 'always_off'
      ? new AlwaysOffSampler()
      : root === 'traceidratio'
        ? new TraceIdRatioBasedSampler(ratio)
        : new AlwaysOnSampler()
  return parentBased ? new ParentBasedSampler({ root: sampler }) : sampler
}

/** The SDK reports export failures through its diag logger: into the log, at most a line a minute. */
function installDiagLogger(log: Logger): void {
  let lastAt = 0
  let suppressed = 0
  const report = (message: string, args: unknown[]) => {
    const now = Date.now()
    if (now - lastAt < 60_000) {
      suppressed++
      return
    }
    lastAt = now
    const detail = [message, ...args].map(errorText).join(' ').trim()
    log.warn('tracing: spans not exported', { code: 'RETRIABLE', detail, suppressedSinceLast: suppressed })
    suppressed = 0
  }
  const quiet = () => undefined
  diag.setLogger(
    { error: (m, ...a) => report(m, a), warn: (m, ...a) => report(m, a), info: quiet, debug: quiet, verbose: quiet },
    { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true },
  )
}

/** The message of what the SDK reports: an error, or an error it turned into JSON (its error handler does). */
function errorText(a: unknown): string {
  if (a instanceof Error) return a.message
  if (typeof a !== 'string') return JSON.stringify(a) ?? String(a)
  try {
    const parsed = JSON.parse(a) as { message?: unknown }
    if (typeof parsed?.message === 'string') return parsed.message
  } catch {
    // plain text
  }
  return a
}

const VERSION = (() => {
  try {
    return (JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string }).version
  } catch {
    return 'unknown'
  }
})()
