/**
 * Rate limits before expensive work, on the real stack: failed API key attempts are limited per
 * client address and per key prefix before any lookup or scrypt (counted by ApiKeys.verifications),
 * scrypt runs a bounded number at a time, and event ingestion has a per-key limit in events/s whose
 * refusals produce nothing to Kafka. Requests come from several loopback addresses (127.0.0.x):
 * different clients as the server sees them.
 */
import http from 'node:http'
import crypto from 'node:crypto'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { expect } from 'chai'
import express from 'express'
import type { Admin, Kafka } from 'kafkajs'
import { publisherAuthentication } from '../../api/management/auth.ts'
import { createHttpIngest, type HttpIngest } from '../../producers/http-ingest/index.ts'
import { AvroSerde, RegistryClient } from '../../schemas/serde/index.ts'
import { TOPICS, type TopicSpec } from '../../schemas/topics.ts'
import type { RegistryServer } from '../../schemas/registry/index.ts'
import { startManagement, type ManagementHarness } from '../helpers/management.ts'
import { testKafka } from '../helpers/env.ts'
import { deleteTopics, quietLogger, startTestRegistry } from '../helpers/registry.ts'
import { countRecords, createTopics, uniqueTopic } from '../helpers/sources.ts'

interface Answer {
  status: number
  headers: http.IncomingHttpHeaders
  body: any
}

/** One request from a given local address (a different client to the server). */
function callFrom(
  localAddress: string,
  base: string,
  method: string,
  path: string,
  key: string | null,
  body?: string,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {}
    if (key !== null) headers.authorization = `Bearer ${key}`
    if (body !== undefined) headers['content-type'] = 'application/json'
    const req = http.request(`${base}${path}`, { method, headers, localAddress, agent: false }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (text += c))
      res.on('end', () => {
        let parsed: unknown = text
        try {
          parsed = JSON.parse(text)
        } catch {
          // not JSON
        }
        resolve({ status: res.statusCode!, headers: res.headers, body: parsed })
      })
    })
    req.on('error', reject)
    req.end(body)
  })
}

const wrongSecret = (key: string) => `${key.split('.')[0]}.${crypto.randomBytes(32).toString('base64url')}`
const count = (answers: Answer[], status: number) => answers.filter((a) => a.status === status).length
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function expectAttemptRefusal(a: Answer) {
  expect(a.status).to.equal(429)
  expect(a.headers['content-type']).to.match(/application\/problem\+json/)
  expect(a.body.status).to.equal(429)
  expect(Number(a.headers['retry-after'])).to.be.at.least(1)
  expect(a.headers.ratelimit).to.match(/^"key-attempts";r=0;t=\d+$/)
  expect(a.headers['ratelimit-policy']).to.equal('"key-attempts";q=1;w=1')
}

async function createKey(h: ManagementHarness, kind: 'publisher' | 'partner', slug: string) {
  const org = await h.call('POST', '/v1/organizations', { body: { kind, name: slug, slug } })
  expect(org.status, org.text).to.equal(201)
  const k = await h.call('POST', '/v1/api-keys', {
    body: { scope: kind, organizationId: org.body.id, name: `${slug}-key` },
  })
  expect(k.status, k.text).to.equal(201)
  return { orgId: org.body.id as string, key: k.body.key as string }
}

describe('API key attempts are limited before verification', function () {
  this.timeout(60_000)

  it(
    'answers a flood of bad keys 429 after the burst without hashing them, while ' + 'valid keys of other clients pass',
    async () => {
      const h = await startManagement({
        overrides: { management: { keyAttempts: { perSecond: 1, burst: 5 }, apiKeyCacheMs: 300 } },
      })
      try {
        const P = await createKey(h, 'publisher', 'flood-p')
        const A = await createKey(h, 'partner', 'flood-a')
        const B = await createKey(h, 'partner', 'flood-b')
        // P's key is used once from 127.0.0.2 before the flood: this process now knows it.
        expect((await callFrom('127.0.0.2', h.url, 'GET', '/v1/organizations', P.key)).status).to.equal(200)
        const before = h.cp.keys.verifications

        // 30 guesses at P's secret at once from 127.0.0.1 (the burst is 5).
        const flood = await Promise.all(
          Array.from({ length: 30 }, () =>
            callFrom('127.0.0.1', h.url, 'GET', '/v1/organizations', wrongSecret(P.key)),
          ),
        )
        const unauthorized = count(flood, 401)
        expect(unauthorized, 'the burst (plus at most one refill)').to.be.within(5, 6)
        expect(count(flood, 429)).to.equal(30 - unauthorized)
        for (const a of flood.filter((x) => x.status === 429)) expectAttemptRefusal(a)
        expect(h.cp.keys.verifications - before, 'scrypt ran for the admitted attempts only').to.equal(unauthorized)

        // Another client with a key this process has never verified: unaffected.
        const other = await callFrom('127.0.0.2', h.url, 'GET', '/v1/organizations', A.key)
        expect(other.status).to.equal(200)
        expect(h.cp.keys.verifications - before).to.equal(unauthorized + 1)

        // P's prefix is exhausted: guesses from a third address are refused too (the bucket refills 1/s,
        // so the time since the flood may have given it one attempt back)...
        const third = []
        for (let i = 0; i < 3; i++)
          third.push(await callFrom('127.0.0.3', h.url, 'GET', '/v1/organizations', wrongSecret(P.key)))
        expect(count(third, 429)).to.be.at.least(2)
        for (const a of third.filter((x) => x.status === 429)) expectAttemptRefusal(a)
        // ...yet P itself, known to this process, passes after its trust ran out (one read, no hash).
        await sleep(400)
        expect((await callFrom('127.0.0.2', h.url, 'GET', '/v1/organizations', P.key)).status).to.equal(200)
        // The flooding address, emptied again: a key known here passes, a key never verified here must wait.
        for (let i = 0; i < 3; i++)
          await callFrom(
            '127.0.0.1',
            h.url,
            'GET',
            '/v1/organizations',
            `dk_${crypto.randomBytes(6).toString('hex')}.${'A'.repeat(43)}`,
          )
        expect((await callFrom('127.0.0.1', h.url, 'GET', '/v1/organizations', A.key)).status).to.equal(200)
        expectAttemptRefusal(await callFrom('127.0.0.1', h.url, 'GET', '/v1/organizations', B.key))
        const third401 = count(third, 401)
        expect(
          h.cp.keys.verifications - before,
          "no hash after the flood but A's first use and a refilled guess",
        ).to.equal(unauthorized + 1 + third401)

        // A flood of made-up prefixes from one address is limited by the address alone.
        const made = await Promise.all(
          Array.from({ length: 12 }, () =>
            callFrom(
              '127.0.0.4',
              h.url,
              'GET',
              '/v1/organizations',
              `dk_${crypto.randomBytes(6).toString('hex')}.${'A'.repeat(43)}`,
            ),
          ),
        )
        expect(count(made, 401)).to.be.within(5, 6)
        expect(count(made, 429)).to.equal(12 - count(made, 401))
      } finally {
        await h.close()
      }
    },
  )

  it(
    'refuses a verification as busy (503, Retry-After) when too many wait for a ' + 'hashing slot, and recovers',
    async () => {
      const h = await startManagement({ overrides: { management: { keyVerifyConcurrency: 1, keyVerifyQueue: 0 } } })
      try {
        const keys = []
        for (let i = 0; i < 6; i++) keys.push(await createKey(h, 'partner', `busy-${i}`))
        const before = h.cp.keys.verifications
        const answers = await Promise.all(
          keys.map((k, i) => callFrom(`127.0.1.${i + 1}`, h.url, 'GET', '/v1/organizations', k.key)),
        )
        const busy = answers.filter((a) => a.status === 503)
        expect(busy.length, JSON.stringify(answers.map((a) => a.status))).to.be.greaterThan(0)
        for (const a of busy) {
          expect(a.headers['retry-after']).to.equal('1')
          expect(a.headers['content-type']).to.match(/application\/problem\+json/)
          expect(a.body.detail).to.match(/too many API key verifications/)
        }
        expect(count(answers, 200) + busy.length).to.equal(6)
        expect(h.cp.keys.verifications - before).to.equal(count(answers, 200))
        for (const k of keys) expect((await h.call('GET', '/v1/organizations', { key: k.key })).status).to.equal(200)
      } finally {
        await h.close()
      }
    },
  )
})

describe('event ingestion: a rate limit per API key', function () {
  this.timeout(90_000)
  let registry: RegistryServer & { topic: string }
  let kafka: Kafka
  let admin: Admin
  let topic: TopicSpec
  let h: ManagementHarness
  let ingest: HttpIngest
  let server: Server
  let base: string
  let P: { orgId: string; key: string }
  let secondKey: string

  before(async () => {
    registry = await startTestRegistry()
    kafka = testKafka()
    admin = kafka.admin()
    await admin.connect()
    topic = uniqueTopic(TOPICS.inventoryLevels)
    await createTopics(admin, [topic])
    h = await startManagement({ overrides: { management: { keyAttempts: { perSecond: 1, burst: 3 } } } })
    P = await createKey(h, 'publisher', 'ingest-p')
    const k2 = await h.call('POST', '/v1/api-keys', {
      body: { scope: 'publisher', organizationId: P.orgId, name: 'second' },
    })
    secondKey = k2.body.key
    ingest = createHttpIngest({
      kafka,
      serde: new AvroSerde(new RegistryClient({ url: registry.url })),
      logger: quietLogger,
      authenticate: publisherAuthentication(h.cp.keys),
      topics: [topic],
      rateLimit: { perSecond: 1, burst: 10 },
    })
    await ingest.start()
    const app = express()
    app.use(ingest.router)
    server = await new Promise((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s))
    })
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })

  after(async () => {
    await ingest?.stop()
    server?.closeAllConnections()
    await new Promise((r) => server?.close(r))
    await h?.close()
    await admin?.disconnect()
    await registry?.close()
    await deleteTopics(topic.name, registry.topic)
  })

  const events = (n: number, from = 0) =>
    JSON.stringify(
      Array.from({ length: n }, (_, i) => ({
        manufacturerId: P.orgId,
        sku: `SKU-${from + i}`,
        locationId: 'L1',
        locationType: 'WAREHOUSE',
        unitOfMeasure: 'EA',
        onHand: 10,
        reserved: 0,
        available: 10,
        incoming: [],
        sequence: from + i,
        occurredAt: '2026-11-20T10:00:00.000Z',
      })),
    )
  const post = (key: string, body: string, from = '127.0.0.1') =>
    callFrom(from, base, 'POST', '/v1/events/inventory.level.changed', key, body)

  it(
    'answers 429 with Retry-After and the RateLimit fields once a key sent its ' +
      'events, produces nothing of the refused request, and leaves another key ' +
      'alone',
    async () => {
      const first = await post(P.key, events(10))
      expect(first.status, JSON.stringify(first.body)).to.equal(202)
      expect(first.headers['ratelimit-policy']).to.equal('"ingest";q=1;w=1')
      expect(first.headers.ratelimit).to.equal('"ingest";r=0;t=1')

      const refused = await post(P.key, events(3, 100))
      expect(refused.status).to.equal(429)
      expect(refused.headers['content-type']).to.match(/application\/problem\+json/)
      expect(refused.body.detail).to.match(/1 events per second/)
      expect(Number(refused.headers['retry-after'])).to.be.at.least(1)
      expect(refused.headers.ratelimit).to.match(/^"ingest";r=0;t=\d+$/)
      expect(refused.headers['ratelimit-policy']).to.equal('"ingest";q=1;w=1')
      // Refused before its body is read: not even malformed JSON is looked at.
      expect((await post(P.key, '{not json')).status).to.equal(429)

      const other = await post(secondKey, events(3, 200))
      expect(other.status, 'another key of the same publisher has its own bucket').to.equal(202)
      expect(other.headers.ratelimit).to.equal('"ingest";r=7;t=1')
      expect(await countRecords(admin, topic.name), 'the refused requests produced nothing').to.equal(13)

      await sleep(Number(refused.headers['retry-after']) * 1000)
      const again = await post(P.key, events(1, 300))
      expect(again.status, 'admitted again after Retry-After').to.equal(202)
      expect(await countRecords(admin, topic.name)).to.equal(14)
    },
  )

  it('charges a batch larger than the burst whole, then refuses until the debt is repaid', async () => {
    const k = await h.call('POST', '/v1/api-keys', {
      body: { scope: 'publisher', organizationId: P.orgId, name: 'batch' },
    })
    const big = await post(k.body.key, events(25, 400))
    expect(big.status).to.equal(202)
    const next = await post(k.body.key, events(1, 500))
    expect(next.status).to.equal(429)
    expect(Number(next.headers['retry-after']), '(1 - (10 - 25)) / 1 s, less what refilled meanwhile').to.be.within(
      15,
      16,
    )
  })

  it('limits failed key attempts at ingestion too, before hashing (429, key-attempts)', async () => {
    const before = h.cp.keys.verifications
    const flood = await Promise.all(Array.from({ length: 10 }, () => post(wrongSecret(P.key), events(1), '127.0.0.9')))
    expect(count(flood, 401)).to.be.within(3, 4)
    expect(count(flood, 429)).to.equal(10 - count(flood, 401))
    for (const a of flood.filter((x) => x.status === 429)) {
      expect(a.headers['content-type']).to.match(/application\/problem\+json/)
      expect(a.headers.ratelimit).to.match(/^"key-attempts";r=0;t=\d+$/)
      expect(Number(a.headers['retry-after'])).to.be.at.least(1)
    }
    expect(h.cp.keys.verifications - before).to.equal(count(flood, 401))
  })
})
