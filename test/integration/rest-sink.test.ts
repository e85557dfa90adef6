/**
 * The REST sink against a real CRM-like API and OAuth2 token endpoint on 127.0.0.1 (express): token
 * caching and sharing, refresh on 401, token endpoint failures, auth kinds, URL templates, body
 * mappings, the status rules shared with webhooks, and batching driven by the runtime's DeliveryQueue.
 */
import { expect } from 'chai'
import { createLogger } from '../../common/logger.ts'
import {
  DataError,
  EndpointDisabledError,
  PartnerRejectedError,
  RetriableError,
  SyndicationError,
} from '../../common/errors.ts'
import { DeliveryQueue, type DeadLetterInfo } from '../../connectors/sink/delivery-queue.ts'
import type { AttemptReport, SinkRecord } from '../../connectors/sink/types.ts'
import { HttpSinkClient } from '../../consumers/http/index.ts'
import { MappingSandbox, OAuth2TokenCache, RestSink, type RestSinkConfig } from '../../consumers/rest/index.ts'
import { startCrm, type Crm } from '../helpers/crm.ts'
import { waitFor } from '../helpers/env.ts'
import { loopbackOnlyGuard, startReceiver } from '../helpers/receiver.ts'

const silent = createLogger({ write: () => {} })

function level(sku: string, seq: number, offset = seq): SinkRecord {
  return {
    topic: 'levels',
    partition: 0,
    offset: String(offset),
    key: sku,
    value: { sku, available: seq * 10, sequence: seq },
    headers: {},
    eventId: `evt-${sku}-${seq}`,
    eventType: 'inventory.level.changed',
    timestamp: Date.UTC(2026, 0, 1),
  }
}

async function failure(p: Promise<unknown>): Promise<SyndicationError> {
  try {
    await p
  } catch (err) {
    expect(err).to.be.instanceOf(SyndicationError)
    return err as SyndicationError
  }
  throw new Error('expected a failure')
}

describe('REST sink against a CRM-like API and an OAuth2 token endpoint', function () {
  this.timeout(30_000)
  let crm: Crm
  let client: HttpSinkClient
  let tokens: OAuth2TokenCache
  let attempts: AttemptReport[]
  const sinks: RestSink[] = []
  const mappings = new MappingSandbox()
  after(() => mappings.close())

  const oauth = () => ({
    type: 'oauth2' as const,
    tokenUrl: crm.tokenUrl,
    clientId: crm.clientId,
    clientSecret: crm.clientSecret,
    scope: 'stock:write',
    audience: 'https://crm.example/api',
  })
  const start = async (config: Partial<RestSinkConfig> = {}, id = 'sub-rest') => {
    const sink = new RestSink(client, tokens, mappings)
    await sink.start(
      { url: `${crm.url}/api/stock/{value.sku}`, method: 'PUT', auth: oauth(), timeoutMs: 2000, ...config },
      { subscriptionId: id, logger: silent, onAttempt: (r) => attempts.push(r) },
    )
    sinks.push(sink)
    return sink
  }

  beforeEach(async () => {
    crm = await startCrm()
    client = new HttpSinkClient({ guard: loopbackOnlyGuard })
    tokens = new OAuth2TokenCache(client)
    attempts = []
  })
  afterEach(async () => {
    for (const s of sinks.splice(0)) await s.stop()
    await client.close()
    await crm.close()
  })

  it(
    'caches the token: one token request for many calls, shared by subscriptions ' + 'with the same credentials',
    async () => {
      const a = await start({}, 'sub-a')
      const b = await start({}, 'sub-b')
      await Promise.all([...Array(10).keys()].map((i) => (i % 2 ? a : b).put([level(`SKU-${i}`, 1)])))
      for (let i = 0; i < 5; i++) await a.put([level('SKU-0', i + 2)])
      expect(crm.tokenRequests).to.have.length(1)
      expect(crm.tokenRequests[0]).to.deep.equal({
        clientId: crm.clientId,
        scope: 'stock:write',
        audience: 'https://crm.example/api',
        via: 'basic',
      })
      expect(crm.requests).to.have.length(15)
      for (const r of crm.requests) expect(r.headers.authorization).to.equal(`Bearer ${crm.tokensIssued[0]}`)
      expect(crm.requests.map((r) => r.headers['idempotency-key'])).to.include.members(['evt-SKU-3-1', 'evt-SKU-0-6'])
      // other credentials: a token of their own
      const c = await start({ auth: { ...oauth(), clientAuth: 'body', scope: 'other' } }, 'sub-c')
      await c.put([level('SKU-X', 1)])
      expect(crm.tokenRequests).to.have.length(2)
      expect(crm.tokenRequests[1]).to.include({ via: 'body', scope: 'other' })
    },
  )

  it('refreshes the token once on a 401 and retries the call at once', async () => {
    const sink = await start()
    await sink.put([level('SKU-1', 1)])
    crm.revokeAll()
    await sink.put([level('SKU-1', 2)])
    expect(crm.tokenRequests).to.have.length(2)
    expect(crm.requests.map((r) => r.status)).to.deep.equal([200, 401, 200])
    expect(crm.requests[2]!.headers.authorization).to.equal(`Bearer ${crm.tokensIssued[1]}`)
    expect(crm.requests[1]!.headers['idempotency-key']).to.equal(crm.requests[2]!.headers['idempotency-key'])
    expect(crm.records.get('SKU-1')).to.deep.include({ sequence: 2 })
    expect(attempts.map((a) => [a.status, a.outcome])).to.deep.equal([
      [200, 'delivered'],
      [401, 'retriable'],
      [200, 'delivered'],
    ])
    // a 401 to a fresh token too is the partner's answer: rejected after one refresh, no loop
    crm.acceptTokens = false
    const err = await failure(sink.put([level('SKU-1', 3)]))
    expect(err).to.be.instanceOf(PartnerRejectedError)
    expect((err as PartnerRejectedError).status).to.equal(401)
    expect(crm.tokenRequests).to.have.length(3)
    expect(crm.requests.map((r) => r.status)).to.deep.equal([200, 401, 200, 401, 401])
  })

  it('refreshes a token shortly before it expires', async () => {
    let now = Date.now()
    tokens = new OAuth2TokenCache(client, { now: () => now })
    crm.expiresIn = 60
    const sink = await start()
    await sink.put([level('SKU-1', 1)])
    now += 50_000
    await sink.put([level('SKU-1', 2)])
    expect(crm.tokenRequests).to.have.length(1)
    now += 5_000 // 55 s: within the margin (a tenth of 60 s) before expiry
    await sink.put([level('SKU-1', 3)])
    expect(crm.tokenRequests).to.have.length(2)
  })

  it(
    'classifies token endpoint failures: bad credentials are rejected, 5xx ' +
      'retriable with Retry-After; no secret in errors or reports',
    async () => {
      const bad = await start({ auth: { ...oauth(), clientSecret: 'wrong-secret-123' } })
      const err = await failure(bad.put([level('SKU-1', 1)]))
      expect(err).to.be.instanceOf(PartnerRejectedError)
      expect(err.message).to.include('invalid_client')
      expect(err.context).to.include({ stage: 'oauth2-token', oauthError: 'invalid_client' })
      // remembered for a moment: a backlog does not hammer the token endpoint
      await failure(bad.put([level('SKU-1', 2)]))
      expect(crm.tokenRequests).to.have.length(1)
      expect(crm.requests).to.have.length(0)

      crm.tokenMode = 'unavailable'
      const good = await start()
      const down = await failure(good.put([level('SKU-2', 1)]))
      expect(down).to.be.instanceOf(RetriableError)
      expect((down as RetriableError).retryAfterMs).to.equal(7000)
      crm.tokenMode = 'ok'
      await good.put([level('SKU-2', 1)])
      const text =
        JSON.stringify(attempts) +
        err.message +
        JSON.stringify(err.context) +
        down.message +
        JSON.stringify(down.context)
      expect(text).to.not.include(crm.clientSecret)
      expect(text).to.not.include('wrong-secret-123')
      for (const t of crm.tokensIssued) expect(text).to.not.include(t)
      // the token endpoint's answers in the delivery log; the remembered refusal made no call (no status)
      expect(attempts.filter((a) => a.target === crm.tokenUrl).map((a) => [a.status, a.outcome])).to.deep.equal([
        [401, 'rejected'],
        [undefined, 'rejected'],
        [503, 'retriable'],
      ])
    },
  )

  it(
    'sends bearer, basic and custom-header auth, Idempotency-Key and the extra ' + 'headers; secrets never in reports',
    async () => {
      const rx = await startReceiver()
      try {
        const cases: Array<[RestSinkConfig['auth'], string, string]> = [
          [{ type: 'bearer', token: 'bearer-secret-1' }, 'authorization', 'Bearer bearer-secret-1'],
          [
            { type: 'basic', username: 'u', password: 'basic-secret-2' },
            'authorization',
            'Basic ' + Buffer.from('u:basic-secret-2').toString('base64'),
          ],
          [{ type: 'header', headerName: 'X-Api-Key', headerValue: 'header-secret-3' }, 'x-api-key', 'header-secret-3'],
          [{ type: 'none' }, 'authorization', ''],
        ]
        for (const [auth, header, value] of cases) {
          const sink = await start({
            url: `${rx.url}/{key}`,
            method: 'POST',
            auth: auth!,
            headers: { 'X-Tenant': 't1' },
          })
          await sink.put([level('SKU-1', 1)])
          const got = rx.received.at(-1)!
          expect(got.headers[header] ?? '').to.equal(value)
          expect(got.headers['idempotency-key']).to.equal('evt-SKU-1-1')
          expect(got.headers['x-tenant']).to.equal('t1')
          expect(got.headers['content-type']).to.equal('application/json')
        }
        rx.setHandler((_r, res) => res.writeHead(400).end('bad'))
        const sink = await start({
          url: `${rx.url}/{key}`,
          method: 'POST',
          auth: { type: 'bearer', token: 'bearer-secret-4' },
        })
        const err = await failure(sink.put([level('SKU-1', 2)]))
        expect(JSON.stringify(attempts) + err.message + JSON.stringify(err.context)).to.not.match(/secret-[1234]/)
      } finally {
        await rx.close()
      }
    },
  )

  it('upserts by external id: the URL template encodes the value, PUT/PATCH leaves the latest state', async () => {
    const sink = await start({
      bodyMapping: '{ "externalId": value.sku, "available": value.available, "seq": value.sequence, "at": timestamp }',
    })
    for (let seq = 1; seq <= 3; seq++) for (const sku of ['A-1', 'B/2 x?']) await sink.put([level(sku, seq)])
    expect(crm.requests.map((r) => r.path)).to.include('/api/stock/B%2F2%20x%3F')
    expect(crm.records.get('A-1')).to.deep.equal({
      externalId: 'A-1',
      available: 30,
      seq: 3,
      at: '2026-01-01T00:00:00.000Z',
    })
    expect(crm.records.get('B/2 x?')).to.deep.include({ seq: 3 })
    const patch = await start({ method: 'PATCH' })
    await patch.put([level('A-1', 4)])
    expect(crm.requests.at(-1)!.method).to.equal('PATCH')
    expect(crm.records.get('A-1')).to.deep.equal({ sku: 'A-1', available: 40, sequence: 4 })
  })

  it('turns an event it cannot map or address into a DataError naming the reason', async () => {
    const sink = await start({
      bodyMapping: 'value.sequence = 2 ? $error("sequence 2 is refused") : { "externalId": value.sku }',
    })
    await sink.put([level('SKU-1', 1)])
    const e1 = await failure(sink.put([level('SKU-1', 2)]))
    expect(e1).to.be.instanceOf(DataError)
    expect(e1.message).to.include('body mapping failed').and.include('sequence 2 is refused')
    const e2 = await failure(sink.put([{ ...level('SKU-1', 3), value: { available: 1 } }]))
    expect(e2).to.be.instanceOf(DataError)
    expect(e2.message).to.include('{value.sku}')
    const empty = await start({ bodyMapping: 'value.nothing' })
    expect(await failure(empty.put([level('SKU-1', 4)]))).to.be.instanceOf(DataError)
    expect(crm.requests).to.have.length(1)
  })

  it(
    'follows the webhook status rules: 3xx not followed, 410 disables, 429 with ' + 'Retry-After, timeout, guard',
    async () => {
      const rx = await startReceiver()
      try {
        const sink = await start({ url: `${rx.url}/{key}`, method: 'POST', auth: { type: 'none' }, timeoutMs: 1000 })
        rx.setHandler((_r, res) => res.writeHead(302, { location: 'http://127.0.0.1:1/' }).end())
        expect(await failure(sink.put([level('S', 1)]))).to.be.instanceOf(RetriableError)
        rx.setHandler((_r, res) => res.writeHead(410).end())
        expect(await failure(sink.put([level('S', 1)]))).to.be.instanceOf(EndpointDisabledError)
        rx.setHandler((_r, res) => res.writeHead(429, { 'retry-after': '3' }).end())
        expect(((await failure(sink.put([level('S', 1)]))) as RetriableError).retryAfterMs).to.equal(3000)
        rx.setHandler(() => undefined) // hangs
        const t0 = Date.now()
        const timeout = await failure(sink.put([level('S', 1)]))
        expect(timeout).to.be.instanceOf(RetriableError)
        expect(timeout.context).to.include({ timeout: true })
        expect(Date.now() - t0).to.be.below(3000)
        const refused = await start({ url: 'http://127.0.0.2:9/x/{key}', method: 'POST', auth: { type: 'none' } })
        const g = await failure(refused.put([level('S', 1)]))
        expect(g).to.be.instanceOf(EndpointDisabledError)
        expect((g as EndpointDisabledError).reason).to.equal('url-refused')
      } finally {
        await rx.close()
      }
    },
  )

  describe('batching', () => {
    let queue: DeliveryQueue
    const dead: Array<{ record: SinkRecord; info: DeadLetterInfo }> = []
    beforeEach(() => {
      dead.length = 0
      queue = new DeliveryQueue(
        { onDeadLetter: (_id, record, info) => void dead.push({ record, info }) },
        { logger: silent },
      )
    })
    afterEach(() => queue.close())

    const batchSink = (maxEvents: number) =>
      start({
        url: `${crm.url}/api/stock`,
        method: 'POST',
        bodyMapping: '{ "externalId": key, "seq": value.sequence, "eventId": eventId }',
        batch: { maxEvents, maxWaitMs: 20 },
      })

    it('sends up to N events of different keys per request and keeps per-key order', async () => {
      const sink = await batchSink(5)
      queue.addSubscription({
        id: 'b',
        concurrency: 5,
        policy: { kind: 'schedule', delaysMs: [20, 20], jitter: 0, maxRetryAfterMs: 100 },
        deliver: (r, { signal }) => sink.put([r], { signal }),
      })
      const keys = ['K1', 'K2', 'K3', 'K4', 'K5', 'K6', 'K7']
      let offset = 0
      for (let seq = 1; seq <= 6; seq++) for (const k of keys) queue.enqueue('b', level(k, seq, offset++))
      await waitFor(() => queue.safeOffset('b', 'levels', 0) === String(offset), { what: 'all delivered' })
      const bodies = crm.requests.map((r) => r.body as Array<{ externalId: string; seq: number; eventId: string }>)
      expect(bodies.every((b) => Array.isArray(b) && b.length >= 1 && b.length <= 5)).to.equal(true)
      expect(Math.max(...bodies.map((b) => b.length))).to.equal(5)
      expect(bodies.length).to.be.below(offset)
      for (const b of bodies)
        expect(new Set(b.map((i) => i.externalId)).size, 'one event per key per batch').to.equal(b.length)
      for (const k of keys)
        expect(
          bodies
            .flat()
            .filter((i) => i.externalId === k)
            .map((i) => i.seq),
        ).to.deep.equal([1, 2, 3, 4, 5, 6])
      for (const k of keys) expect(crm.records.get(k)).to.deep.include({ seq: 6 })
      expect(crm.tokenRequests).to.have.length(1)
      const multi = crm.requests.find((r) => (r.body as unknown[]).length > 1)!
      expect(multi.headers['idempotency-key']).to.match(/^batch-/)
      expect(attempts.filter((a) => a.outcome === 'delivered')).to.have.length(offset)
    })

    it(
      're-sends a rejected batch one event per request: only the event the partner ' + 'rejects is dead-lettered',
      async () => {
        const sink = await batchSink(4)
        queue.addSubscription({
          id: 'b',
          concurrency: 4,
          policy: { kind: 'schedule', delaysMs: [20], jitter: 0, maxRetryAfterMs: 100 },
          deliver: (r, { signal }) => sink.put([r], { signal }),
        })
        const records = ['K1', 'REJECT', 'K3', 'K4'].map((k, i) => level(k, 1, i))
        for (const r of records) queue.enqueue('b', r)
        await waitFor(() => queue.safeOffset('b', 'levels', 0) === '4', { what: 'all settled' })
        expect(dead.map((d) => d.record.key)).to.deep.equal(['REJECT'])
        expect(dead[0]!.info.reason).to.equal('rejected')
        for (const k of ['K1', 'K3', 'K4']) expect(crm.records.has(k)).to.equal(true)
        expect(crm.requests.filter((r) => r.status === 422).length).to.be.at.least(2)
      },
    )

    it('fails every event of a batch alike on a retriable answer; each retries and lands', async () => {
      const sink = await batchSink(4)
      queue.addSubscription({
        id: 'b',
        concurrency: 4,
        policy: { kind: 'schedule', delaysMs: [100, 100, 100], jitter: 0, maxRetryAfterMs: 100 },
        deliver: (r, { signal }) => sink.put([r], { signal }),
      })
      crm.apiMode = 'unavailable'
      for (let i = 0; i < 4; i++) queue.enqueue('b', level(`K${i}`, 1, i))
      await waitFor(() => crm.requests.length >= 1)
      crm.apiMode = 'ok'
      await waitFor(() => queue.safeOffset('b', 'levels', 0) === '4', { what: 'all delivered after the retry' })
      expect(dead).to.have.length(0)
      expect(crm.records.size).to.equal(4)
    })
  })
})
