/**
 * POST /v1/events/{eventType} against the real broker, the in-process registry and FerretDB: every
 * error answer, and that nothing reached Kafka for each rejected request; 202 only after the ack,
 * with the event ids; Idempotency-Key replay; 503 with a dead broker and recovery on the live one.
 */
import { expect } from 'chai'
import express from 'express'
import { Kafka, logLevel, type Admin } from 'kafkajs'
import { MongoClient } from 'mongodb'
import { createApp } from '../../api/app.ts'
import { publisherAuthentication } from '../../api/management/auth.ts'
import { ApiKeys } from '../../control-plane/api-keys.ts'
import { collections } from '../../control-plane/store.ts'
import { AvroSerde, RegistryClient } from '../../schemas/serde/index.ts'
import { TOPICS, type TopicSpec } from '../../schemas/topics.ts'
import { HEADER } from '../../schemas/headers.ts'
import { EVENT_EXAMPLES } from '../../schemas/examples.ts'
import { createHttpIngest, type HttpIngest, type IdempotencyDoc } from '../../producers/http-ingest/index.ts'
import { testKafka, testMongo, uniqueName, testConfig, dropDatabaseLater } from '../helpers/env.ts'
import { deleteTopics, quietLogger, startTestRegistry } from '../helpers/registry.ts'
import { listenLocal, type LocalServer } from '../helpers/http.ts'
import { closedPort, countRecords, createTopics, readTopic, uniqueTopic } from '../helpers/sources.ts'
import type { RegistryServer } from '../../schemas/registry/index.ts'
import { kafkaBrokers } from '../../config/index.ts'

const API_KEY = 'pub-key-acme'

function level(sku: string, locationId: string, sequence: number, extra: Record<string, unknown> = {}) {
  return {
    manufacturerId: 'acme',
    sku,
    locationId,
    locationType: 'WAREHOUSE',
    unitOfMeasure: 'EA',
    onHand: 100 + sequence,
    reserved: 10,
    available: 90 + sequence,
    incoming: [{ quantity: 5, expectedDate: '2026-12-01', reference: 'PO-1' }],
    sequence,
    occurredAt: '2026-11-20T10:00:00.000Z',
    ...extra,
  }
}

async function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
  const text = await res.text()
  let json: any
  try {
    json = JSON.parse(text)
  } catch {
    json = text
  }
  return { status: res.status, type: res.headers.get('content-type'), headers: res.headers, body: json }
}

describe('http ingestion: POST /v1/events/{eventType}', function () {
  this.timeout(90_000)
  let registry: RegistryServer & { topic: string }
  let serde: AvroSerde
  let kafka: Kafka
  let admin: Admin
  let mongo: MongoClient
  let dbName: string
  let inventory: TopicSpec
  let deals: TopicSpec
  let ingest: HttpIngest
  let server: LocalServer
  let base: string

  const authenticate = async (req: express.Request) =>
    req.get('authorization') === `Bearer ${API_KEY}` ? { organizationId: 'acme' } : undefined

  before(async () => {
    registry = await startTestRegistry()
    serde = new AvroSerde(new RegistryClient({ url: registry.url }))
    kafka = testKafka()
    admin = kafka.admin()
    await admin.connect()
    inventory = uniqueTopic(TOPICS.inventoryLevels)
    deals = uniqueTopic(TOPICS.dealRegistrations)
    await createTopics(admin, [inventory, deals])
    mongo = testMongo()
    await mongo.connect()
    dbName = uniqueName('ingest').slice(0, 60)
    ingest = createHttpIngest({
      kafka,
      serde,
      logger: quietLogger,
      authenticate,
      topics: [inventory, deals],
      idempotency: { collection: mongo.db(dbName).collection<IdempotencyDoc>('idempotency_keys'), windowMs: 60_000 },
      maxEvents: 50,
      bodyLimitBytes: 64 * 1024,
    })
    await ingest.start()
    const app = express()
    app.use(ingest.router)
    server = await listenLocal(app)
    base = server.url
  })

  after(async () => {
    await ingest?.stop()
    await server?.close()
    dropDatabaseLater(dbName)
    await mongo?.close()
    await admin?.disconnect()
    await registry?.close()
    await deleteTopics(inventory.name, deals.name, registry.topic)
  })

  const url = (type = 'inventory.level.changed') => `${base}/v1/events/${type}`

  async function expectNothingProduced() {
    expect(await countRecords(admin, inventory.name)).to.equal(0)
    expect(await countRecords(admin, deals.name)).to.equal(0)
  }

  describe('rejected requests produce nothing', () => {
    it('401 problem+json without a valid API key', async () => {
      const r = await post(url(), [level('A', 'L1', 1)], { authorization: 'Bearer wrong' })
      expect(r.status).to.equal(401)
      expect(r.type).to.match(/^application\/problem\+json/)
      expect(r.body.status).to.equal(401)
      await expectNothingProduced()
    })

    it('404 for an unknown event type, naming the known ones', async () => {
      const r = await post(url('inventory.level.exploded'), [level('A', 'L1', 1)])
      expect(r.status).to.equal(404)
      expect(r.type).to.match(/^application\/problem\+json/)
      expect(r.body.knownTypes).to.include('inventory.level.changed').and.include('deal.registered')
      expect(r.body.detail).to.contain('inventory.level.changed')
      await expectNothingProduced()
    })

    it('415 for a body that is not application/json', async () => {
      const r = await post(url(), JSON.stringify([level('A', 'L1', 1)]), { 'content-type': 'text/csv' })
      expect(r.status).to.equal(415)
      expect(r.type).to.match(/^application\/problem\+json/)
      expect(r.body.errors[0].field).to.equal('header:content-type')
      await expectNothingProduced()
    })

    it('413 for a body over the byte limit', async () => {
      const big = Array.from({ length: 40 }, (_, i) => level('A', 'L1', i, { gtin: 'x'.repeat(2000) }))
      const r = await post(url(), big)
      expect(r.status).to.equal(413)
      expect(r.type).to.match(/^application\/problem\+json/)
      await expectNothingProduced()
    })

    it('413 for more events than the batch limit', async () => {
      const r = await post(
        url(),
        Array.from({ length: 51 }, (_, i) => level('A', 'L1', i)),
      )
      expect(r.status).to.equal(413)
      expect(r.body.maxEvents).to.equal(50)
      await expectNothingProduced()
    })

    it('400 naming each query parameter: the route takes none (they were ignored)', async () => {
      for (const [q, fields] of [
        ['?dryRun=true', ['query:dryRun']],
        ['?a=1&b=2&a=3', ['query:a', 'query:b']],
        ['?[x]=1', ['query:[x]']],
      ] as const) {
        const r = await post(url() + q, [level('A', 'L1', 1)])
        expect(r.status, q).to.equal(400)
        expect(r.type).to.match(/^application\/problem\+json/)
        expect(
          r.body.errors.map((e: { field: string }) => e.field),
          q,
        ).to.deep.equal(fields)
      }
      await expectNothingProduced()
    })

    it('400 for malformed JSON, a non-array and an empty batch', async () => {
      for (const body of ['[{"sku": ', JSON.stringify(level('A', 'L1', 1)), '[]']) {
        const r = await post(url(), body)
        expect(r.status, body).to.equal(400)
        expect(r.type).to.match(/^application\/problem\+json/)
        expect(r.body.errors).to.be.an('array').with.length.greaterThan(0)
      }
      await expectNothingProduced()
    })

    it(
      '400 listing every bad item by index and field path; the good items of the ' + 'batch are not produced either',
      async () => {
        const { sku: _omit, ...noSku } = level('C', 'L1', 3)
        const batch = [
          level('A', 'L1', 1),
          level('B', 'L1', 2, { onHand: 'many' }),
          noSku,
          level('D', 'L1', 4, { locationType: 'MOON', incoming: [{ quantity: 1.5, expectedDate: '2026-13-45' }] }),
          level('E', 'L1', 5, { colour: 'red' }),
          level('F', 'L1', 6),
        ]
        const r = await post(url(), batch)
        expect(r.status).to.equal(400)
        expect(r.type).to.match(/^application\/problem\+json/)
        const fields = r.body.errors.map((e: { field: string }) => e.field)
        expect(fields).to.include.members([
          '/1/onHand',
          '/2/sku',
          '/3/locationType',
          '/3/incoming/0/quantity',
          '/3/incoming/0/expectedDate',
          '/4/colour',
        ])
        expect(new Set(r.body.errors.map((e: { index: number }) => e.index))).to.deep.equal(new Set([1, 2, 3, 4]))
        expect(r.body.detail).to.contain('4 of 6')
        await expectNothingProduced()
      },
    )

    it(
      '403 naming /i/manufacturerId for an event of another manufacturer than the ' + 'publishing organization',
      async () => {
        const r = await post(url(), [level('A', 'L1', 1), level('B', 'L1', 1, { manufacturerId: 'globex' })])
        expect(r.status).to.equal(403)
        expect(r.type).to.match(/^application\/problem\+json/)
        expect(r.body.errors).to.deep.equal([
          { index: 1, field: '/1/manufacturerId', message: 'must be the publishing organization acme, got globex' },
        ])
        await expectNothingProduced()
      },
    )
  })

  describe('accepted requests', () => {
    it(
      '202 after the broker acked every event, with the event ids; the events are ' +
        'in Kafka with keys, headers, and per-key order',
      async () => {
        const batch = [
          level('SKU-1', 'L1', 1),
          level('SKU-2', 'L1', 1),
          level('SKU-1', 'L1', 2),
          level('SKU-1', 'L1', 3),
        ]
        const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
        const r = await post(url(), batch, { traceparent })
        expect(r.status).to.equal(202)
        expect(r.body.accepted).to.equal(4)
        expect(r.body.eventIds).to.have.length(4)
        const records = await readTopic(kafka, admin, serde, inventory.name)
        expect(records).to.have.length(4)
        expect(records.map((x) => x.headers[HEADER.id]).sort()).to.deep.equal([...r.body.eventIds].sort())
        for (const x of records) {
          expect(x.headers[HEADER.type]).to.equal('inventory.level.changed')
          expect(x.headers[HEADER.source]).to.equal('/sources/http-ingest')
          expect(x.headers[HEADER.traceparent]).to.equal(traceparent)
          expect(x.headers[HEADER.time]).to.equal('2026-11-20T10:00:00.000Z')
          expect(x.headers[HEADER.publisherId], 'the publishing organization is stamped').to.equal('acme')
          expect({ ...x.key }, 'the key carries its owner').to.deep.equal({
            manufacturerId: 'acme',
            sku: x.value.sku,
            locationId: x.value.locationId,
          })
        }
        const sku1 = records.filter((x) => x.value.sku === 'SKU-1')
        expect(new Set(sku1.map((x) => x.partition)).size).to.equal(1)
        expect(sku1.map((x) => x.value.sequence)).to.deep.equal([1, 2, 3])
        expect(sku1[0]!.value.incoming[0].expectedDate).to.equal(Date.parse('2026-12-01') / 86_400_000)
      },
    )

    it('deal events with decimal amounts and another event type go to their own topic', async () => {
      // the documented example, with more decimal places than it shows and the timestamps as epoch milliseconds
      const deal = {
        ...(EVENT_EXAMPLES['deal.registered']![0] as { dealId: string }),
        lines: [{ sku: 'HX-1', quantity: 3, unitPrice: '1999.9900' }],
        amount: '5999.97',
        registeredAt: 1_764_000_000_000,
        occurredAt: 1_764_000_000_000,
      }
      const r = await post(url('deal.registered'), [deal])
      expect(r.status).to.equal(202)
      const records = await readTopic(kafka, admin, serde, deals.name)
      expect(records).to.have.length(1)
      expect(records[0]!.headers[HEADER.type]).to.equal('deal.registered')
      expect({ ...records[0]!.key }).to.deep.equal({ manufacturerId: 'acme', dealId: deal.dealId })
    })
  })

  describe('Idempotency-Key', () => {
    it('a retry with the same key returns the first answer and produces nothing again', async () => {
      const before = await countRecords(admin, inventory.name)
      const key = uniqueName('idem')
      const batch = [level('IDEM', 'L1', 1), level('IDEM', 'L1', 2)]
      const first = await post(url(), batch, { 'idempotency-key': key })
      expect(first.status).to.equal(202)
      expect(await countRecords(admin, inventory.name)).to.equal(before + 2)
      const second = await post(url(), batch, { 'idempotency-key': key })
      expect(second.status).to.equal(202)
      expect(second.body).to.deep.equal(first.body)
      expect(second.headers.get('idempotent-replayed')).to.equal('true')
      expect(await countRecords(admin, inventory.name)).to.equal(before + 2)
      const reused = await post(url(), [level('IDEM', 'L1', 3)], { 'idempotency-key': key })
      expect(reused.status).to.equal(422)
      expect(await countRecords(admin, inventory.name)).to.equal(before + 2)
    })

    it('a 400 is replayed too, and concurrent requests with one key produce once', async () => {
      const bad = await post(url(), [level('X', 'L1', 1, { onHand: -0.5 })], { 'idempotency-key': 'bad-once' })
      const bad2 = await post(url(), [level('X', 'L1', 1, { onHand: -0.5 })], { 'idempotency-key': 'bad-once' })
      expect(bad.status).to.equal(400)
      expect(bad2.status).to.equal(400)
      expect(bad2.body).to.deep.equal(bad.body)

      const before = await countRecords(admin, inventory.name)
      const key = uniqueName('race')
      const batch = [level('RACE', 'L1', 1)]
      const answers = await Promise.all(Array.from({ length: 6 }, () => post(url(), batch, { 'idempotency-key': key })))
      const statuses = answers.map((a) => a.status)
      expect(statuses.filter((s) => s === 202).length).to.be.greaterThan(0)
      expect(statuses.every((s) => s === 202 || s === 409)).to.equal(true, String(statuses))
      const ids = new Set(answers.filter((a) => a.status === 202).map((a) => JSON.stringify(a.body.eventIds)))
      expect(ids.size).to.equal(1)
      expect(await countRecords(admin, inventory.name)).to.equal(before + 1)
    })
  })

  describe('Kafka unreachable', () => {
    it(
      '503 with Retry-After while the broker address is dead, nothing stored, then ' +
        '202 once it points at the live broker',
      async () => {
        let brokers = [`127.0.0.1:${await closedPort()}`]
        const switchable = new Kafka({
          clientId: uniqueName('switch'),
          brokers: async () => brokers,
          connectionTimeout: 500,
          logLevel: logLevel.NOTHING,
          retry: { retries: 1, initialRetryTime: 100, maxRetryTime: 500 },
        })
        const topic = uniqueTopic(TOPICS.inventoryLevels)
        await createTopics(admin, [topic])
        const dead = createHttpIngest({
          kafka: switchable,
          serde,
          logger: quietLogger,
          authenticate,
          topics: [topic],
          name: 'http-ingest-switch',
          idempotency: {
            collection: mongo.db(dbName).collection<IdempotencyDoc>('idempotency_keys'),
            windowMs: 60_000,
          },
          producerRetry: { retries: 1, maxRetryTime: 500, initialRetryTime: 100 },
        })
        await dead.start()
        const app = express()
        app.use(dead.router)
        const s = await listenLocal(app)
        try {
          const batch = [level('DOWN', 'L1', 1), level('DOWN', 'L1', 2)]
          const t0 = Date.now()
          const r = await post(`${s.url}/v1/events/inventory.level.changed`, batch, {
            'idempotency-key': 'during-outage',
          })
          expect(r.status).to.equal(503)
          expect(r.type).to.match(/^application\/problem\+json/)
          expect(Number(r.headers.get('retry-after'))).to.be.greaterThan(0)
          expect(Date.now() - t0).to.be.lessThan(20_000)
          expect(await countRecords(admin, topic.name)).to.equal(0)

          brokers = kafkaBrokers(testConfig())
          const ok = await post(`${s.url}/v1/events/inventory.level.changed`, batch, {
            'idempotency-key': 'during-outage',
          })
          expect(ok.status).to.equal(202)
          const records = await readTopic(kafka, admin, serde, topic.name)
          expect(records.map((x) => x.value.sequence)).to.deep.equal([1, 2])
        } finally {
          await dead.stop()
          await s.close()
          await deleteTopics(topic.name)
        }
      },
    )
  })
})

describe('HTTP ingestion while the store is away', function () {
  this.timeout(30_000)

  it(
    'answers 503 with Retry-After, not 500, when the API key cannot be checked ' +
      '(the store unreachable); nothing is accepted',
    async () => {
      // The key check reads the store (after the key cache expired); here the store does not answer at all.
      const away = new MongoClient(`mongodb://127.0.0.1:${await closedPort()}/`, {
        serverSelectionTimeoutMS: 300,
        connectTimeoutMS: 300,
      })
      const keys = new ApiKeys(collections(away.db('away')), { bootstrapKey: '', cacheMs: 0, logger: quietLogger })
      const kafka = testKafka()
      const ingest = createHttpIngest({
        kafka,
        serde: undefined as never,
        logger: quietLogger,
        authenticate: publisherAuthentication(keys),
        topics: [TOPICS.inventoryLevels],
      })
      const app = createApp({ logger: quietLogger, readiness: {}, routers: [ingest.router] })
      const { url, close } = await listenLocal(app)
      try {
        const res = await fetch(`${url}/v1/events/inventory.level.changed`, {
          method: 'POST',
          headers: { authorization: `Bearer dk_0123456789ab.${'s'.repeat(43)}`, 'content-type': 'application/json' },
          body: '[]',
        })
        const body = (await res.json()) as { title?: string; detail?: string }
        expect([res.status, res.headers.get('retry-after'), body.title]).to.deep.equal([
          503,
          '5',
          'Service Unavailable',
        ])
        expect(body.detail).to.match(/store is unreachable/)
      } finally {
        await close()
        await away.close()
      }
    },
  )
})
