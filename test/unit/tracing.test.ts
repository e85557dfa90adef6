/**
 * Tracing (docs/tracing.md) with the SDK's in-memory exporter: the settings, delivery attempt spans
 * as children of the event's trace context, the traceparent partners receive (tracing off: the
 * event's as it came; on: the call's span, a child of the attempt), REST batches, log lines with
 * trace ids, and a tracer provider shared by two starters.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { expect } from 'chai'
import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api'
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base'
import { ConfigError, RetriableError } from '../../common/errors.ts'
import { createLogger } from '../../common/logger.ts'
import {
  activeSpan,
  callerTrace,
  runInSpan,
  startSpan,
  startTracing,
  tracesUrl,
  tracingFromConfig,
  tracingOn,
  type Tracing,
} from '../../common/tracing.ts'
import { loadConfig } from '../../config/index.ts'
import { DeliveryQueue } from '../../connectors/sink/delivery-queue.ts'
import type { SinkRecord } from '../../connectors/sink/types.ts'
import { HttpSinkClient } from '../../consumers/http/index.ts'
import { MappingSandbox, OAuth2TokenCache, RestSink } from '../../consumers/rest/index.ts'
import { WebhookClient, WebhookSink, generateSecret } from '../../consumers/webhook/index.ts'
import { waitFor } from '../helpers/env.ts'
import { loopbackOnlyGuard, startReceiver, type Receiver } from '../helpers/receiver.ts'

const silent = createLogger({ write: () => {} })
const PUBLISHER_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
const PUBLISHER_SPAN = '00f067aa0ba902b7'
const traceparent = `00-${PUBLISHER_TRACE}-${PUBLISHER_SPAN}-01`

function rec(offset: number, key = `SKU-${offset}`): SinkRecord {
  return {
    topic: 'inventory.levels',
    partition: 1,
    offset: String(offset),
    key,
    value: { sku: key, available: offset },
    headers: { traceparent, tracestate: 'vendor=opaque' },
    eventId: `evt-${offset}`,
    eventType: 'inventory.level.changed',
    timestamp: 0,
  }
}

const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId
const named = (spans: ReadableSpan[], prefix: string) => spans.filter((s) => s.name.startsWith(prefix))

describe('tracing settings', () => {
  it('is off by default; an OTLP endpoint turns it on; OTEL_TRACES_EXPORTER=none keeps it off', () => {
    expect(tracesUrl(loadConfig({ env: {} }))).to.equal(undefined)
    expect(tracesUrl(loadConfig({ env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' } }))).to.equal(
      'http://collector:4318/v1/traces',
    )
    expect(tracesUrl(loadConfig({ env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/base/' } }))).to.equal(
      'http://collector:4318/base/v1/traces',
    )
    expect(
      tracesUrl(
        loadConfig({
          env: {
            OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318',
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://b:4318/traces',
          },
        }),
      ),
    ).to.equal('http://b:4318/traces')
    expect(tracesUrl(loadConfig({ env: { OTEL_TRACES_EXPORTER: 'otlp' } }))).to.equal('http://localhost:4318/v1/traces')
    expect(
      tracesUrl(
        loadConfig({ env: { OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' } }),
      ),
    ).to.equal(undefined)
  })

  it('refuses a bad value naming the setting, and never shows an export header value', () => {
    expect(() => loadConfig({ env: { OTEL_TRACES_EXPORTER: 'zipkin' } })).to.throw(ConfigError, 'OTEL_TRACES_EXPORTER')
    expect(() => loadConfig({ env: { OTEL_TRACES_SAMPLER_ARG: '2' } })).to.throw(ConfigError, 'OTEL_TRACES_SAMPLER_ARG')
    expect(() => loadConfig({ env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' } })).to.throw(
      ConfigError,
      'OTEL_EXPORTER_OTLP_ENDPOINT',
    )
    let message = ''
    try {
      loadConfig({ env: { OTEL_EXPORTER_OTLP_HEADERS: 'x-team=a,Bearer-s3cr3t-t0ken' } })
    } catch (err) {
      message = (err as Error).message
    }
    expect(message).to.include('OTEL_EXPORTER_OTLP_HEADERS').and.include('pair 2').and.not.include('s3cr3t')
    const ok = loadConfig({
      env: {
        OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer%20t,x-team=a',
        OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=prod',
      },
    })
    expect(ok.tracing.headers).to.equal('authorization=Bearer%20t,x-team=a')
  })

  it("reads a caller's W3C headers, and ignores an invalid traceparent", () => {
    expect(callerTrace({ traceparent, tracestate: 'a=1' })).to.deep.equal({ traceparent, tracestate: 'a=1' })
    expect(callerTrace({})).to.equal(undefined)
    expect(callerTrace({ traceparent: `00-${'0'.repeat(32)}-${PUBLISHER_SPAN}-01` })).to.equal(undefined)
    expect(callerTrace({ traceparent: 'garbage' })).to.equal(undefined)
  })
})

describe('tracing off', () => {
  let receiver: Receiver
  let client: WebhookClient
  before(async () => {
    receiver = await startReceiver()
    client = new WebhookClient({ guard: loopbackOnlyGuard })
  })
  after(async () => {
    await client.close()
    await receiver.close()
  })

  it("records nothing, and a webhook carries the event's traceparent as it came (no tracestate)", async () => {
    expect(tracingOn()).to.equal(false)
    const lines: string[] = []
    const logger = createLogger({ write: (l) => lines.push(l) })
    const sink = new WebhookSink(client)
    await sink.start(
      { url: receiver.url, secrets: [{ secret: generateSecret() }] },
      { subscriptionId: 'sub-off', logger },
    )
    const q = new DeliveryQueue({ onDeadLetter: () => undefined }, { logger: silent })
    q.addSubscription({
      id: 'sub-off',
      deliver: async (r) => {
        logger.info('delivering')
        expect(activeSpan()).to.equal(undefined)
        await sink.put([r])
      },
    })
    q.enqueue('sub-off', rec(0))
    await waitFor(() => receiver.received.length === 1, { timeoutMs: 5000 })
    q.close()
    expect(receiver.received[0]!.headers.traceparent).to.equal(traceparent)
    expect(receiver.received[0]!.headers.tracestate).to.equal(undefined)
    expect(JSON.parse(lines[0]!)).to.not.have.any.keys('trace_id', 'span_id')
  })
})

describe('tracing on (in-memory exporter)', () => {
  const exporter = new InMemorySpanExporter()
  let tracing: Tracing
  let receiver: Receiver
  before(async () => {
    tracing = await startTracing({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
    receiver = await startReceiver()
  })
  after(async () => {
    await tracing.shutdown()
    await receiver.close()
  })
  beforeEach(() => {
    exporter.reset()
    receiver.received.length = 0
  })

  it(
    "a span per delivery attempt, each a child of the event's trace context, " +
      'active while it runs; failures marked',
    async () => {
      const lines: string[] = []
      const logger = createLogger({ write: (l) => lines.push(l) })
      const q = new DeliveryQueue({ onDeadLetter: () => undefined }, { logger: silent })
      let calls = 0
      q.addSubscription({
        id: 'sub-1',
        policy: { kind: 'schedule', delaysMs: [10], jitter: 0, maxRetryAfterMs: 1000 },
        deliver: async () => {
          await new Promise((r) => setTimeout(r, 1))
          logger.info('attempt', { n: ++calls })
          if (calls === 1) throw new RetriableError('endpoint answered 503')
        },
      })
      q.enqueue('sub-1', rec(7))
      await waitFor(() => named(exporter.getFinishedSpans(), 'deliver').length === 2, { timeoutMs: 5000 })
      q.close()
      const [first, second] = named(exporter.getFinishedSpans(), 'deliver')
      for (const s of [first!, second!]) {
        expect(s.name).to.equal('deliver inventory.levels')
        expect(s.kind).to.equal(SpanKind.CONSUMER)
        expect(s.spanContext().traceId).to.equal(PUBLISHER_TRACE)
        expect(parentOf(s)).to.equal(PUBLISHER_SPAN)
        expect(s.attributes).to.include({
          'messaging.system': 'kafka',
          'messaging.destination.name': 'inventory.levels',
          'messaging.destination.partition.id': '1',
          'messaging.kafka.offset': 7,
          'cloudevents.event_id': 'evt-7',
          'distributary.subscription.id': 'sub-1',
        })
      }
      expect(first!.attributes['distributary.delivery.attempt']).to.equal(1)
      expect(first!.status).to.deep.include({ code: SpanStatusCode.ERROR, message: 'endpoint answered 503' })
      expect(first!.attributes).to.include({ 'error.type': 'RETRIABLE', 'distributary.retriable': true })
      expect(second!.attributes['distributary.delivery.attempt']).to.equal(2)
      expect(second!.status.code).to.not.equal(SpanStatusCode.ERROR)
      // the log lines written during each attempt name it
      const logged = lines.map((l) => JSON.parse(l) as { trace_id?: string; span_id?: string })
      expect(logged.map((l) => l.span_id)).to.deep.equal([first!.spanContext().spanId, second!.spanContext().spanId])
      expect(logged.every((l) => l.trace_id === PUBLISHER_TRACE)).to.equal(true)
    },
  )

  it("the queue's own log lines about an attempt (a dead letter) carry its trace ids", async () => {
    const lines: string[] = []
    const q = new DeliveryQueue(
      { onDeadLetter: () => undefined },
      { logger: createLogger({ write: (l) => lines.push(l) }) },
    )
    q.addSubscription({
      id: 'sub-dl',
      policy: { kind: 'schedule', delaysMs: [], jitter: 0, maxRetryAfterMs: 1000 },
      deliver: async () => Promise.reject(new RetriableError('down')),
    })
    q.enqueue('sub-dl', rec(3))
    await waitFor(() => lines.length > 0, { timeoutMs: 5000 })
    q.close()
    const attempt = named(exporter.getFinishedSpans(), 'deliver')[0]!
    expect(JSON.parse(lines[0]!)).to.include({
      msg: 'delivery exhausted its retries: dead letter',
      trace_id: PUBLISHER_TRACE,
      span_id: attempt.spanContext().spanId,
    })
  })

  it('a webhook call is a CLIENT span under the attempt, and the partner receives its traceparent', async () => {
    const client = new WebhookClient({ guard: loopbackOnlyGuard })
    try {
      const sink = new WebhookSink(client)
      await sink.start(
        { url: receiver.url, secrets: [{ secret: generateSecret() }] },
        { subscriptionId: 'sub-wh', logger: silent },
      )
      const q = new DeliveryQueue({ onDeadLetter: () => undefined }, { logger: silent })
      q.addSubscription({ id: 'sub-wh', deliver: (r) => sink.put([r]) })
      q.enqueue('sub-wh', rec(1))
      await waitFor(() => named(exporter.getFinishedSpans(), 'deliver').length === 1, { timeoutMs: 5000 })
      q.close()
    } finally {
      await client.close()
    }
    const spans = exporter.getFinishedSpans()
    const deliver = named(spans, 'deliver')[0]!
    const post = spans.find((s) => s.name === 'POST')!
    expect(post.kind).to.equal(SpanKind.CLIENT)
    expect(parentOf(post)).to.equal(deliver.spanContext().spanId)
    expect(post.attributes).to.include({
      'http.request.method': 'POST',
      'server.address': '127.0.0.1',
      'http.response.status_code': 204,
      'url.full': receiver.url,
    })
    expect(receiver.received[0]!.headers.traceparent).to.equal(`00-${PUBLISHER_TRACE}-${post.spanContext().spanId}-01`)
    expect(receiver.received[0]!.headers.tracestate).to.equal(undefined)
  })

  it('a REST batch is one request: its span a child of the first attempt, linked to the others', async () => {
    const client = new HttpSinkClient({ guard: loopbackOnlyGuard })
    const mappings = new MappingSandbox()
    try {
      const sink = new RestSink(client, new OAuth2TokenCache(client), mappings)
      await sink.start(
        { url: `http://127.0.0.1:${receiver.port}/stock`, method: 'POST', batch: { maxEvents: 3, maxWaitMs: 200 } },
        { subscriptionId: 'sub-rest', logger: silent },
      )
      const q = new DeliveryQueue({ onDeadLetter: () => undefined }, { logger: silent })
      q.addSubscription({ id: 'sub-rest', concurrency: 3, deliver: (r) => sink.put([r]) })
      for (const o of [1, 2, 3]) q.enqueue('sub-rest', rec(o))
      await waitFor(() => named(exporter.getFinishedSpans(), 'deliver').length === 3, { timeoutMs: 5000 })
      q.close()
      await sink.stop()
    } finally {
      await client.close()
      await mappings.close()
    }
    expect(receiver.received).to.have.length(1)
    const spans = exporter.getFinishedSpans()
    const attempts = named(spans, 'deliver').map((s) => s.spanContext().spanId)
    const post = spans.filter((s) => s.name === 'POST')
    expect(post).to.have.length(1)
    const parent = parentOf(post[0]!)!
    expect(attempts).to.include(parent)
    expect(post[0]!.links.map((l) => l.context.spanId).sort()).to.deep.equal(
      attempts.filter((a) => a !== parent).sort(),
    )
    expect(receiver.received[0]!.headers.traceparent).to.equal(
      `00-${PUBLISHER_TRACE}-${post[0]!.spanContext().spanId}-01`,
    )
  })

  it('log lines carry trace_id and span_id only inside a span', () => {
    const lines: string[] = []
    const logger = createLogger({ write: (l) => lines.push(l) })
    logger.info('outside')
    const span = startSpan('work', {})
    runInSpan(span, () => logger.info('inside'))
    span.end()
    const [outside, inside] = lines.map((l) => JSON.parse(l) as Record<string, unknown>)
    expect(outside).to.not.have.any.keys('trace_id', 'span_id')
    expect(inside).to.include({
      trace_id: span.spanContext().traceId,
      span_id: span.spanContext().spanId,
      msg: 'inside',
    })
  })

  it('a second start shares the provider; tracing stays on until the last one shuts down', async () => {
    const second = await startTracing({ spanProcessors: [] })
    await second.shutdown()
    await second.shutdown() // twice is once
    expect(tracingOn()).to.equal(true)
    const span = startSpan('still exported', {})
    span.end()
    expect(exporter.getFinishedSpans().map((s) => s.name)).to.include('still exported')
  })
})

describe('tracing shut down', () => {
  it('leaves nothing registered: no provider, no context manager', async () => {
    const exporter = new InMemorySpanExporter()
    const t = await startTracing({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
    await t.shutdown()
    expect(tracingOn()).to.equal(false)
    const span = trace.getTracer('x').startSpan('nothing')
    expect(span.isRecording()).to.equal(false)
    runInSpan(span, () => expect(trace.getActiveSpan()).to.equal(undefined))
    expect(exporter.getFinishedSpans()).to.deep.equal([])
  })
})

describe('tracing export failures', () => {
  it('a collector refusing the last export is a warning at shutdown, never a failed shutdown', async () => {
    const collector = http.createServer((req, res) => req.resume().on('end', () => res.writeHead(400).end()))
    await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve))
    const lines: string[] = []
    try {
      const endpoint = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`
      const t = await tracingFromConfig(
        loadConfig({
          env: { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer%20s3cr3t' },
        }),
        createLogger({ write: (l) => lines.push(l) }),
      )
      expect(tracingOn()).to.equal(true)
      startSpan('lost', {}).end()
      await t!.shutdown()
    } finally {
      collector.close()
    }
    expect(tracingOn()).to.equal(false)
    const logged = lines.map((l) => JSON.parse(l) as { level: string; msg: string; endpoint?: string })
    expect(logged[0]).to.include({ level: 'info', msg: 'tracing on: spans are exported over OTLP/HTTP' })
    expect(
      logged.some((l) => l.level === 'warn' && l.msg === 'tracing: the last spans were not exported at shutdown'),
    ).to.equal(true)
    expect(lines.join('\n')).to.not.include('s3cr3t')
  })
})
