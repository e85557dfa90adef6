import { expect } from 'chai'
import { Webhook } from 'standardwebhooks'
import {
  ConfigError,
  EndpointDisabledError,
  PartnerRejectedError,
  RetriableError,
  SyndicationError,
} from '../../common/errors.ts'
import { createLogger } from '../../common/logger.ts'
import type { AttemptReport, SinkRecord } from '../../connectors/sink/types.ts'
import { WebhookClient, WebhookSink, generateSecret, type WebhookSinkConfig } from '../../consumers/webhook/index.ts'
import { loopbackOnlyGuard, startReceiver, type Receiver } from '../helpers/receiver.ts'

const silent = createLogger({ write: () => {} })

function rec(offset: number, value: unknown = { sku: 'SKU-1', qty: offset }): SinkRecord {
  return {
    topic: 'inventory.levels',
    partition: 0,
    offset: String(offset),
    key: 'SKU-1',
    value,
    headers: {},
    eventId: `msg_${offset}_${Math.random().toString(36).slice(2)}`,
    eventType: 'inventory.level.changed',
    timestamp: Date.parse('2025-03-01T12:00:00Z'),
  }
}

function hdrs(r: { headers: Record<string, unknown> }): Record<string, string> {
  return {
    'webhook-id': String(r.headers['webhook-id']),
    'webhook-timestamp': String(r.headers['webhook-timestamp']),
    'webhook-signature': String(r.headers['webhook-signature']),
  }
}

describe('webhook sink (Standard Webhooks) against real receivers', function () {
  this.timeout(20_000)
  let client: WebhookClient
  const receivers: Receiver[] = []
  const open = async (...args: Parameters<typeof startReceiver>) => {
    const r = await startReceiver(...args)
    receivers.push(r)
    return r
  }
  const sinkFor = async (config: Partial<WebhookSinkConfig> & { url: string }, reports: AttemptReport[] = []) => {
    const sink = new WebhookSink(client)
    await sink.start(
      { secrets: [{ secret: generateSecret() }], ...config },
      { subscriptionId: 'sub-test', logger: silent, onAttempt: (r) => reports.push(r) },
    )
    return sink
  }
  const failure = async (p: Promise<unknown>) => {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(err, 'expected a failure').to.be.instanceOf(SyndicationError)
    return err as SyndicationError
  }

  beforeEach(() => {
    client = new WebhookClient({ guard: loopbackOnlyGuard })
  })
  afterEach(async () => {
    await client.close()
    await Promise.all(receivers.splice(0).map((r) => r.close()))
  })

  it('sends {type, timestamp, data} signed so that the standardwebhooks package verifies it', async () => {
    const rx = await open()
    const secret = generateSecret()
    const reports: AttemptReport[] = []
    const sink = await sinkFor({ url: rx.url, secrets: [{ secret }] }, reports)
    const record = rec(1)
    const before = Math.floor(Date.now() / 1000)
    await sink.put([record])
    expect(rx.received).to.have.length(1)
    const got = rx.received[0]!
    const payload = new Webhook(secret).verify(got.body, hdrs(got)) as Record<string, unknown>
    expect(payload).to.deep.equal({
      type: 'inventory.level.changed',
      timestamp: '2025-03-01T12:00:00.000Z',
      data: { sku: 'SKU-1', qty: 1 },
    })
    expect(got.headers['webhook-id']).to.equal(record.eventId)
    expect(got.headers['content-type']).to.equal('application/json')
    const ts = Number(got.headers['webhook-timestamp'])
    expect(ts).to.be.within(before, Math.floor(Date.now() / 1000))
    expect(String(got.headers['webhook-signature'])).to.match(/^v1,[A-Za-z0-9+/]+=*$/)
    // a wrong secret does not verify
    expect(() => new Webhook(generateSecret()).verify(got.body, hdrs(got))).to.throw()
    expect(reports).to.have.length(1)
    expect(reports[0]).to.include({ outcome: 'delivered', status: 204, eventId: record.eventId })
  })

  it('signs with both secrets during a rotation overlap, each verifying alone, and drops the expired one', async () => {
    const rx = await open()
    const oldSecret = generateSecret()
    const newSecret = generateSecret()
    let now = Date.now()
    const sink = new WebhookSink(client, () => now)
    await sink.start(
      { url: rx.url, secrets: [{ secret: newSecret }, { secret: oldSecret, expiresAt: now + 60_000 }] },
      { subscriptionId: 's', logger: silent },
    )
    await sink.put([rec(1)])
    const during = rx.received[0]!
    expect(String(during.headers['webhook-signature']).split(' ')).to.have.length(2)
    expect(new Webhook(newSecret).verify(during.body, hdrs(during))).to.be.an('object')
    expect(new Webhook(oldSecret).verify(during.body, hdrs(during))).to.be.an('object')
    now += 61_000
    await sink.put([rec(2)])
    const after = rx.received[1]!
    expect(String(after.headers['webhook-signature']).split(' ')).to.have.length(1)
    expect(new Webhook(newSecret).verify(after.body, hdrs(after))).to.be.an('object')
    expect(() => new Webhook(oldSecret).verify(after.body, hdrs(after))).to.throw()
  })

  it('keeps webhook-id across retries and re-signs each attempt with a fresh, verifiable timestamp', async () => {
    const secret = generateSecret()
    const rx = await open((_r, res, i) => res.writeHead(i === 0 ? 503 : 200).end('ok'))
    const sink = await sinkFor({ url: rx.url, secrets: [{ secret }] })
    const record = rec(3)
    expect(await failure(sink.put([record]))).to.be.instanceOf(RetriableError)
    await new Promise((r) => setTimeout(r, 1100))
    await sink.put([record])
    const [first, second] = rx.received
    expect(first!.headers['webhook-id']).to.equal(record.eventId)
    expect(second!.headers['webhook-id']).to.equal(record.eventId)
    expect(first!.body).to.equal(second!.body)
    expect(Number(second!.headers['webhook-timestamp'])).to.be.above(Number(first!.headers['webhook-timestamp']))
    for (const r of [first!, second!]) expect(new Webhook(secret).verify(r.body, hdrs(r))).to.be.an('object')
  })

  it('treats every 2xx as delivered', async () => {
    for (const status of [200, 201, 202, 204, 299]) {
      const rx = await open((_r, res) => res.writeHead(status).end())
      const sink = await sinkFor({ url: rx.url })
      await sink.put([rec(1)])
      expect(rx.received).to.have.length(1)
    }
  })

  it('does not follow a 3xx: a retriable failure, the redirect target never called', async () => {
    const target = await open()
    const rx = await open((_r, res) => res.writeHead(301, { location: target.url }).end())
    const reports: AttemptReport[] = []
    const sink = await sinkFor({ url: rx.url }, reports)
    const err = await failure(sink.put([rec(1)]))
    expect(err).to.be.instanceOf(RetriableError)
    expect(err.context).to.include({ status: 301, location: target.url })
    expect(target.received).to.have.length(0)
    expect(reports[0]).to.include({ outcome: 'retriable', status: 301 })
  })

  it('answers 410 with EndpointDisabledError(gone)', async () => {
    const rx = await open((_r, res) => res.writeHead(410).end('gone'))
    const err = await failure((await sinkFor({ url: rx.url })).put([rec(1)]))
    expect(err).to.be.instanceOf(EndpointDisabledError)
    expect((err as EndpointDisabledError).reason).to.equal('gone')
    expect(err.retriable).to.equal(false)
  })

  it('honours Retry-After on 429 (seconds) and 503 (HTTP date); 408, 500, 502, 504 are retriable', async () => {
    const rx429 = await open((_r, res) => res.writeHead(429, { 'retry-after': '7' }).end())
    const e429 = await failure((await sinkFor({ url: rx429.url })).put([rec(1)]))
    expect(e429).to.be.instanceOf(RetriableError)
    expect((e429 as RetriableError).retryAfterMs).to.equal(7000)
    const when = new Date(Date.now() + 120_000).toUTCString()
    const rx503 = await open((_r, res) => res.writeHead(503, { 'retry-after': when }).end())
    const e503 = (await failure((await sinkFor({ url: rx503.url })).put([rec(1)]))) as RetriableError
    expect(e503.retryAfterMs).to.be.within(110_000, 120_000)
    for (const status of [408, 500, 502, 504]) {
      const rx = await open((_r, res) => res.writeHead(status).end())
      const e = await failure((await sinkFor({ url: rx.url })).put([rec(1)]))
      expect(e, String(status)).to.be.instanceOf(RetriableError)
      expect(e.context.status).to.equal(status)
    }
  })

  it('rejects other 4xx with PartnerRejectedError (no retry)', async () => {
    for (const status of [400, 401, 403, 404, 422]) {
      const rx = await open((_r, res) => res.writeHead(status).end())
      const e = await failure((await sinkFor({ url: rx.url })).put([rec(1)]))
      expect(e, String(status)).to.be.instanceOf(PartnerRejectedError)
      expect((e as PartnerRejectedError).status).to.equal(status)
      expect(e.retriable).to.equal(false)
    }
  })

  it('times out a receiver that hangs, as a retriable failure, within the configured timeout', async () => {
    const rx = await open(() => {})
    const sink = await sinkFor({ url: rx.url, timeoutMs: 1000 })
    const t0 = Date.now()
    const e = await failure(sink.put([rec(1)]))
    const took = Date.now() - t0
    expect(e).to.be.instanceOf(RetriableError)
    expect(e.context).to.include({ timeout: true })
    expect(took).to.be.within(950, 2600) // undici's timeout timers tick about every 0.5 s
  })

  it('treats a refused connection as retriable', async () => {
    const rx = await open()
    const url = rx.url
    await rx.close()
    const e = await failure((await sinkFor({ url })).put([rec(1)]))
    expect(e).to.be.instanceOf(RetriableError)
    expect(e.context.errorCode).to.equal('ECONNREFUSED')
  })

  it('captures the first KB of the answer and the timing for the delivery log', async () => {
    const big = 'x'.repeat(3000)
    const rx = await open((_r, res) => res.writeHead(500, { 'content-type': 'text/plain' }).end(big))
    const reports: AttemptReport[] = []
    await failure((await sinkFor({ url: rx.url }, reports)).put([rec(1)]))
    expect(reports[0]!.responseExcerpt).to.equal('x'.repeat(1024))
    expect(reports[0]!.durationMs).to.be.above(0)
    expect(reports[0]).to.include({ status: 500, outcome: 'retriable', code: 'RETRIABLE' })
  })

  it('reuses keep-alive connections', async () => {
    const rx = await open()
    const sink = await sinkFor({ url: rx.url })
    for (let i = 0; i < 20; i++) await sink.put([rec(i)])
    expect(rx.received).to.have.length(20)
    // undici may open a second connection while the first is being released; never one per call
    expect(rx.connections).to.be.at.most(2)
  })

  it('refuses a URL the guard does not allow, without calling it', async () => {
    const rx = await open()
    const url = rx.url.replace('127.0.0.1', '127.0.0.2') // loopback, not in the tests' allowlist
    const e = await failure((await sinkFor({ url })).put([rec(1)]))
    expect(e).to.be.instanceOf(EndpointDisabledError)
    expect((e as EndpointDisabledError).reason).to.equal('url-refused')
    expect(rx.received).to.have.length(0)
  })

  it('refuses invalid configurations, naming the field', async () => {
    const sink = new WebhookSink(client)
    const ctx = { subscriptionId: 's', logger: silent }
    const bad = async (config: unknown, field: RegExp) => {
      const e = await sink.start(config as WebhookSinkConfig, ctx).catch((x: unknown) => x)
      expect(e).to.be.instanceOf(ConfigError)
      expect((e as Error).message).to.match(field)
    }
    await bad({ url: 'ftp://x', secrets: [{ secret: generateSecret() }] }, /url/)
    await bad(
      { url: 'http://127.0.0.1/', secrets: [{ secret: 'whsec_' + Buffer.alloc(16).toString('base64') }] },
      /secrets\[0\]\.secret.*24 bytes/,
    )
    await bad({ url: 'http://127.0.0.1/', secrets: [{ secret: 'abc' }] }, /secrets\[0\]\.secret.*whsec_/)
    await bad({ url: 'http://127.0.0.1/', secrets: [] }, /secrets/)
    await bad(
      { url: 'http://127.0.0.1/', secrets: [{ secret: generateSecret() }], headers: { 'webhook-id': 'x' } },
      /headers\.webhook-id/,
    )
    await bad({ url: 'http://127.0.0.1/', secrets: [{ secret: generateSecret() }], timeoutMs: 0 }, /timeoutMs/)
  })

  it('turns a value that is not JSON-serialisable into a DataError (poison)', async () => {
    const rx = await open()
    const e = await failure((await sinkFor({ url: rx.url })).put([rec(1, { n: 1n })]))
    expect(e.code).to.equal('DATA_INVALID')
    expect(rx.received).to.have.length(0)
  })
})
