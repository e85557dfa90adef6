/**
 * Tracing end to end (docs/tracing.md) on a started platform and the real stack: an event posted with
 * a traceparent is delivered to a webhook receiver carrying the same trace, and the spans exported
 * over OTLP/HTTP (to a small collector in this test) show ingestion → create → send → deliver → POST
 * as one trace. Off (the default, or OTEL_TRACES_EXPORTER=none), the receiver gets the traceparent
 * as posted and the collector hears nothing.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { randomBytes } from 'node:crypto'
import { expect } from 'chai'
import { startPlatform, type Platform } from '../../cli/platform.ts'
import { createLogger } from '../../common/logger.ts'
import { tracingOn } from '../../common/tracing.ts'
import { testPlatformConfig, uniqueName, waitFor } from '../helpers/env.ts'
import { startReceiver, type Receiver } from '../helpers/receiver.ts'

/** One span as OTLP/JSON carries it (ids in hex). */
interface OtlpSpan {
  traceId: string
  spanId: string
  parentSpanId?: string
  name: string
  kind: number
  attributes: Array<{ key: string; value: { stringValue?: string; intValue?: number | string; boolValue?: boolean } }>
  links?: Array<{ traceId: string; spanId: string }>
}

interface Collector {
  url: string
  requests: number
  spans: OtlpSpan[]
  resources: Array<Record<string, unknown>>
  close(): Promise<void>
}

/** A minimal OTLP/HTTP collector: keeps the spans of every JSON export request to /v1/traces. */
async function startCollector(): Promise<Collector> {
  const c = { requests: 0, spans: [] as OtlpSpan[], resources: [] as Array<Record<string, unknown>> }
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (d: Buffer) => chunks.push(d))
    req.on('end', () => {
      c.requests++
      if (req.url !== '/v1/traces' || !String(req.headers['content-type']).startsWith('application/json'))
        return void res.writeHead(415).end()
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        resourceSpans: Array<{
          resource: { attributes: OtlpSpan['attributes'] }
          scopeSpans: Array<{ spans: OtlpSpan[] }>
        }>
      }
      for (const rs of body.resourceSpans) {
        c.resources.push(
          Object.fromEntries(rs.resource.attributes.map((a) => [a.key, a.value.stringValue ?? a.value.intValue])),
        )
        for (const ss of rs.scopeSpans) c.spans.push(...ss.spans)
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  return Object.assign(c, {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  })
}

const attr = (s: OtlpSpan, key: string) => {
  const v = s.attributes.find((a) => a.key === key)?.value
  return v === undefined ? undefined : (v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : v.boolValue))
}

/** OTLP's span kinds (the API's SpanKind plus one). */
const KIND = { server: 2, client: 3, producer: 4, consumer: 5 }

/** A platform with one publisher and one partner whose webhook subscription goes to `receiver`. */
async function scenario(what: string, env: NodeJS.ProcessEnv, receiver: Receiver) {
  const { config, adminKey } = testPlatformConfig(what, { ...process.env, ...env })
  Object.assign(config.worker, { pollMs: 300, heartbeatMs: 300, cursorFlushMs: 300, statusIntervalMs: 1000 })
  const p = await startPlatform(config, createLogger({ level: 'error', write: () => undefined }), {
    stopStackOnClose: false,
  })
  const call = async (
    method: string,
    path: string,
    body?: unknown,
    key = adminKey,
    headers: Record<string, string> = {},
  ) => {
    const res = await fetch(p.url + path, {
      method,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    })
    return { status: res.status, body: (await res.json().catch(() => null)) as any }
  }
  const run = uniqueName('tr').slice(-8)
  const pub = await call('POST', '/v1/organizations', { kind: 'publisher', name: `P ${run}`, slug: `pub-${run}` })
  const partner = await call('POST', '/v1/organizations', { kind: 'partner', name: `N ${run}`, slug: `partner-${run}` })
  const pubKey = (await call('POST', '/v1/api-keys', { scope: 'publisher', organizationId: pub.body.id, name: 'erp' }))
    .body.key as string
  const grant = await call('POST', '/v1/grants', {
    publisherId: pub.body.id,
    partnerId: partner.body.id,
    entitlements: [{ eventType: 'inventory.level.changed' }],
  })
  expect((await call('POST', `/v1/grants/${grant.body.id}/accept`)).status).to.equal(200)
  const sub = await call('POST', '/v1/subscriptions', {
    partnerId: partner.body.id,
    name: 'hooks',
    eventTypes: ['inventory.level.changed'],
    sink: { type: 'webhook', url: receiver.url },
  })
  expect(sub.status).to.equal(201)
  await waitFor(async () => (await call('GET', `/v1/connectors/${sub.body.id}/status`)).body?.state === 'running', {
    timeoutMs: 60_000,
    what: 'the subscription running',
  })
  const sku = `SKU-${run}`
  /** Posts one event with `traceparent` (ingestion may still be starting: 503 until then). */
  const publish = async (traceparent: string) => {
    const event = {
      manufacturerId: pub.body.id as string,
      sku,
      locationId: 'L1',
      locationType: 'WAREHOUSE',
      unitOfMeasure: 'EA',
      onHand: 5,
      reserved: 0,
      available: 5,
      incoming: [],
      sequence: 1,
      occurredAt: new Date().toISOString(),
    }
    let answer: { status: number; body: any } | undefined
    await waitFor(
      async () =>
        (answer = await call('POST', '/v1/events/inventory.level.changed', [event], pubKey, {
          traceparent,
          tracestate: 'pub=1',
        })).status !== 503,
      { timeoutMs: 30_000, what: 'ingestion ready' },
    )
    expect(answer!.status).to.equal(202)
    return answer!.body.eventIds[0] as string
  }
  /** The webhook request carrying the event. */
  const delivered = async (eventId: string) => {
    await waitFor(() => receiver.received.some((r) => r.headers['webhook-id'] === eventId), {
      timeoutMs: 30_000,
      what: 'the webhook',
    })
    return receiver.received.find((r) => r.headers['webhook-id'] === eventId)!
  }
  return { p, publish, delivered }
}

describe('tracing: ingestion → Kafka → delivery attempts in one trace', function () {
  this.timeout(180_000)
  let collector: Collector
  let receiver: Receiver
  let platform: Platform | undefined
  beforeEach(async () => {
    collector = await startCollector()
    receiver = await startReceiver()
  })
  afterEach(async () => {
    await platform?.close()
    platform = undefined
    await receiver.close()
    await collector.close()
  })

  it(
    'exports ingestion, create, send, deliver and the webhook call as one trace; ' + 'the partner gets its traceparent',
    async () => {
      const s = await scenario(
        'tracing-on',
        { OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, OTEL_SERVICE_NAME: 'distributary-test' },
        receiver,
      )
      platform = s.p
      expect(tracingOn()).to.equal(true)
      const traceId = randomBytes(16).toString('hex')
      const callerSpan = randomBytes(8).toString('hex')
      const eventId = await s.publish(`00-${traceId}-${callerSpan}-01`)
      const hook = await s.delivered(eventId)
      await platform.close() // exports what is still buffered
      platform = undefined
      expect(tracingOn()).to.equal(false)

      const spans = collector.spans.filter((x) => x.traceId === traceId)
      const one = (name: string) => {
        const found = spans.filter((x) => x.name === name)
        expect(found, `${name} in ${spans.map((x) => x.name).join(', ')}`).to.have.length(1)
        return found[0]!
      }
      const server = one('POST /v1/events/{eventType}')
      const create = one('create inventory.levels')
      const send = one('send inventory.levels')
      const deliver = one('deliver inventory.levels')
      const post = one('POST')
      expect(server.kind).to.equal(KIND.server)
      expect(server.parentSpanId).to.equal(callerSpan)
      expect(attr(server, 'http.response.status_code')).to.equal(202)
      expect(create.kind).to.equal(KIND.producer)
      expect(create.parentSpanId).to.equal(server.spanId)
      expect(attr(create, 'messaging.batch.message_count')).to.equal(1)
      expect(send.parentSpanId).to.equal(create.spanId)
      expect(attr(send, 'messaging.system')).to.equal('kafka')
      expect(deliver.kind).to.equal(KIND.consumer)
      expect(deliver.parentSpanId).to.equal(create.spanId)
      expect(attr(deliver, 'cloudevents.event_id')).to.equal(eventId)
      expect(attr(deliver, 'distributary.delivery.attempt')).to.equal(1)
      expect(post.kind).to.equal(KIND.client)
      expect(post.parentSpanId).to.equal(deliver.spanId)
      expect(attr(post, 'http.response.status_code')).to.equal(204)
      // the partner continues the webhook call's span; the publisher's tracestate stays with the platform
      expect(hook.headers.traceparent).to.equal(`00-${traceId}-${post.spanId}-01`)
      expect(hook.headers.tracestate).to.equal(undefined)
      expect(collector.resources.some((r) => r['service.name'] === 'distributary-test')).to.equal(true)
    },
  )

  it('off: nothing is exported, and the partner gets the traceparent as the publisher sent it', async () => {
    const s = await scenario(
      'tracing-off',
      { OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: collector.url },
      receiver,
    )
    platform = s.p
    expect(tracingOn()).to.equal(false)
    const traceparent = `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`
    const hook = await s.delivered(await s.publish(traceparent))
    expect(hook.headers.traceparent).to.equal(traceparent)
    await platform.close()
    platform = undefined
    expect(collector.requests).to.equal(0)
  })
})
