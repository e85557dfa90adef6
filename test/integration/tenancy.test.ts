/**
 * Many manufacturers, many partners, one platform (docs/tenancy.md): two publishers (Acme, Globex) and
 * two partners (Northwind, Contoso) on one running platform, every path end to end against the real
 * stack. Nothing of one organization reaches, is visible to, or overwrites another's:
 *
 * - equal SKU and location codes (and deal ids) at two manufacturers are different Kafka keys, so both
 *   survive compaction, snapshots and MongoDB projections;
 * - the platform stamps the publisher; a payload naming another organization is refused (ingestion,
 *   sources), and partner profiles are the outbox's alone;
 * - a grant is an offer until the partner accepts it (nothing delivered, nothing visible before), and
 *   the partner may end it; a publisher never sees a partner's sink configuration, and of deliveries only
 *   its own events';
 * - live delivery, snapshot, replay and dead-letter retry all hold the same line (webhook, REST and
 *   MongoDB sinks).
 */
import { expect } from 'chai'
import { MongoClient } from 'mongodb'
import type { Admin } from 'kafkajs'
import { startPlatform, type Platform } from '../../cli/platform.ts'
import { createLogger } from '../../common/logger.ts'
import { mongoUri } from '../../config/index.ts'
import { dropDatabaseLater, testKafka, testPlatformConfig, uniqueName, waitFor } from '../helpers/env.ts'
import { startReceiver, type Receiver } from '../helpers/receiver.ts'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { readTopic, topicEnds } from '../helpers/sources.ts'
import { envelope, HEADER, toHeaders } from '../../schemas/headers.ts'
import { keySubject, valueSubject } from '../../schemas/topics.ts'
import { contractSchema } from '../../schemas/contracts.ts'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

interface Answer {
  status: number
  body: any
  text: string
}

/** The `data` of every Standard Webhooks body a receiver got (REST sinks post the value itself). */
const payloads = (rx: Receiver) =>
  rx.received
    .map((r) => JSON.parse(r.body) as { data?: Record<string, unknown> } & Record<string, unknown>)
    .map((b) => (b.data ?? b) as Record<string, unknown>)

describe('tenancy: two publishers and two partners on one platform', function () {
  this.timeout(240_000)
  const { config, adminKey } = testPlatformConfig('tenancy')
  config.sources.dropRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'tenancy-drop-'))
  Object.assign(config.worker, { pollMs: 300, heartbeatMs: 300, cursorFlushMs: 300, statusIntervalMs: 1000 })
  const logger = createLogger({ level: 'error', write: () => undefined })
  const run = uniqueName('t').slice(-8) // this run's codes: the topics are the platform's own, shared with other runs
  const SKU = `1001-${run}`
  const LOC = 'MAIN'
  let p: Platform
  let admin: Admin
  let mongo: MongoClient
  const org: Record<'acme' | 'globex' | 'northwind' | 'contoso', string> = {
    acme: '',
    globex: '',
    northwind: '',
    contoso: '',
  }
  const key: Record<keyof typeof org, string> = { acme: '', globex: '', northwind: '', contoso: '' }
  const grant: Record<'acmeNorthwind' | 'globexNorthwind' | 'acmeContoso' | 'globexContoso', string> = {
    acmeNorthwind: '',
    globexNorthwind: '',
    acmeContoso: '',
    globexContoso: '',
  }
  const sub: Record<'nwHooks' | 'nwRest' | 'nwMirror' | 'coHooks', string> = {
    nwHooks: '',
    nwRest: '',
    nwMirror: '',
    coHooks: '',
  }
  let rxNw: Receiver
  let rxNwRest: Receiver
  let rxCo: Receiver
  const mirrorDb = uniqueName('mirror').slice(0, 40)
  const eventIds: Record<'acme' | 'globex', string[]> = { acme: [], globex: [] }
  /** Where the platform's (shared) topics ended before this run: the records of this run come after. */
  const ends = new Map<string, Map<number, number>>()
  const readOwn = async (topic: string) =>
    readTopic(testKafka(), admin, (await p.contracts).serde, topic, 30_000, ends.get(topic))

  const call = async (method: string, path: string, body?: unknown, k = adminKey): Promise<Answer> => {
    const res = await fetch(p.url + path, {
      method,
      headers: { authorization: `Bearer ${k}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    })
    const text = await res.text()
    let parsed: unknown = null
    try {
      parsed = JSON.parse(text)
    } catch {
      /* not JSON */
    }
    return { status: res.status, body: parsed, text }
  }
  const level = (manufacturerId: string, sku: string, onHand: number, sequence: number) => ({
    manufacturerId,
    sku,
    locationId: LOC,
    locationType: 'WAREHOUSE',
    unitOfMeasure: 'EA',
    onHand,
    reserved: 0,
    available: onHand,
    incoming: [],
    sequence,
    occurredAt: new Date().toISOString(),
  })
  const publish = async (who: 'acme' | 'globex', events: unknown[], type = 'inventory.level.changed') => {
    const r = await call('POST', `/v1/events/${type}`, events, key[who])
    expect(r.status, r.text).to.equal(202)
    eventIds[who].push(...(r.body.eventIds as string[]))
    return r.body.eventIds as string[]
  }
  const running = (id: string, k = adminKey) =>
    waitFor(async () => (await call('GET', `/v1/connectors/${id}/status`, undefined, k)).body?.state === 'running', {
      timeoutMs: 30_000,
      what: `connector ${id} running`,
    })

  before(async () => {
    p = await startPlatform(config, logger, { stopStackOnClose: false })
    await p.contracts
    admin = testKafka().admin()
    await admin.connect()
    for (const t of ['inventory.levels', 'deals.registrations']) ends.set(t, await topicEnds(admin, t))
    mongo = new MongoClient(mongoUri(config))
    await mongo.connect()
    dropDatabaseLater(mirrorDb)
    for (const [name, kind] of [
      ['acme', 'publisher'],
      ['globex', 'publisher'],
      ['northwind', 'partner'],
      ['contoso', 'partner'],
    ] as const) {
      const o = await call('POST', '/v1/organizations', {
        kind,
        name: `${name} ${run}`,
        slug: `${name}-${run}`,
        ...(kind === 'partner' ? { profile: { tier: 'GOLD' } } : {}),
      })
      expect(o.status, o.text).to.equal(201)
      org[name] = o.body.id
      const k = await call('POST', '/v1/api-keys', { scope: kind, organizationId: o.body.id, name: 'main' })
      key[name] = k.body.key
    }
    const offer = async (from: 'acme' | 'globex', to: 'northwind' | 'contoso', eventTypes: string[]) => {
      const g = await call(
        'POST',
        '/v1/grants',
        { partnerId: org[to], entitlements: eventTypes.map((eventType) => ({ eventType })) },
        key[from],
      )
      expect(g.status, g.text).to.equal(201)
      expect(g.body.status).to.equal('offered')
      return g.body.id as string
    }
    grant.acmeNorthwind = await offer('acme', 'northwind', ['inventory.level.changed', 'deal.registered'])
    grant.globexNorthwind = await offer('globex', 'northwind', ['inventory.level.changed'])
    grant.acmeContoso = await offer('acme', 'contoso', ['inventory.level.changed'])
    grant.globexContoso = await offer('globex', 'contoso', ['inventory.level.changed']) // never accepted
    // 1003: refused by the partner (dead letters)
    rxNw = await startReceiver((r, res) => res.writeHead(/"sku":"1003-/.test(r.body) ? 422 : 204).end())
    rxNwRest = await startReceiver()
    rxCo = await startReceiver()
  })

  after(async () => {
    await p?.close()
    await admin?.disconnect()
    await mongo?.close()
    for (const rx of [rxNw, rxNwRest, rxCo]) await rx?.close()
    fs.rmSync(config.sources.dropRoot, { recursive: true, force: true })
  })

  it(
    'an offer covers nothing until the partner accepts it: no subscription on it, ' +
      "only the partner's name visible to the publisher",
    async () => {
      const early = await call(
        'POST',
        '/v1/subscriptions',
        { name: 'too-early', eventTypes: ['inventory.level.changed'], sink: { type: 'webhook', url: rxNw.url } },
        key.northwind,
      )
      expect(early.status, early.text).to.equal(422)
      expect(early.body.errors[0].field).to.equal('eventTypes[0]')
      expect(early.body.errors[0].message).to.match(/not accepted yet: accept it first/)
      const seen = await call('GET', `/v1/organizations/${org.northwind}`, undefined, key.acme)
      expect(seen.status).to.equal(200)
      expect(seen.body).to.deep.equal({
        id: org.northwind,
        kind: 'partner',
        name: `northwind ${run}`,
        relationship: 'offered',
      })
      // the publisher cannot accept for the partner; another partner cannot even see the grant
      expect((await call('POST', `/v1/grants/${grant.acmeNorthwind}/accept`, {}, key.acme)).status).to.equal(403)
      expect((await call('POST', `/v1/grants/${grant.acmeNorthwind}/accept`, {}, key.contoso)).status).to.equal(404)
      for (const [g, k] of [
        [grant.acmeNorthwind, key.northwind],
        [grant.globexNorthwind, key.northwind],
        [grant.acmeContoso, key.contoso],
      ] as const) {
        const a = await call('POST', `/v1/grants/${g}/accept`, {}, k)
        expect(a.status, a.text).to.equal(200)
      }
      const after = await call('GET', `/v1/organizations/${org.northwind}`, undefined, key.acme)
      expect(after.body).to.include({ relationship: 'active', slug: `northwind-${run}` })
      // Contoso accepted Acme's grant only: Globex still sees its name alone
      expect((await call('GET', `/v1/organizations/${org.contoso}`, undefined, key.globex)).body).to.deep.equal({
        id: org.contoso,
        kind: 'partner',
        name: `contoso ${run}`,
        relationship: 'offered',
      })

      const subscribe = async (who: 'northwind' | 'contoso', body: Record<string, unknown>) => {
        const s = await call(
          'POST',
          '/v1/subscriptions',
          { startFrom: 'latest', deliveryPolicy: { retrySchedule: [1], timeoutMs: 5000 }, ...body },
          key[who],
        )
        expect(s.status, s.text).to.equal(201)
        return s.body.id as string
      }
      sub.nwHooks = await subscribe('northwind', {
        name: 'hooks',
        eventTypes: ['inventory.level.changed', 'deal.registered'],
        sink: { type: 'webhook', url: rxNw.url },
      })
      sub.nwRest = await subscribe('northwind', {
        name: 'rest',
        eventTypes: ['inventory.level.changed'],
        sink: { type: 'rest', url: `${rxNwRest.url}/{key}`, method: 'PUT', headers: { 'x-partner-secret': 'nw-only' } },
      })
      sub.nwMirror = await subscribe('northwind', {
        name: 'mirror',
        eventTypes: ['inventory.level.changed'],
        sink: { type: 'mongodb', connectionString: mongoUri(config), database: mirrorDb, collection: 'levels' },
      })
      sub.coHooks = await subscribe('contoso', {
        name: 'hooks',
        eventTypes: ['inventory.level.changed'],
        sink: { type: 'webhook', url: rxCo.url },
      })
      for (const id of Object.values(sub)) await running(id)
    },
  )

  it(
    'equal SKU and location at two manufacturers: two Kafka keys, both delivered ' +
      'and both projected; each partner gets what it accepted',
    async () => {
      await publish('acme', [level(org.acme, SKU, 10, 1)])
      await publish('globex', [level(org.globex, SKU, 20, 1)])
      const mirror = mongo.db(mirrorDb).collection('levels')
      await waitFor(
        async () =>
          rxNw.received.length >= 2 &&
          rxNwRest.received.length >= 2 &&
          (await mirror.countDocuments({ sku: SKU })) === 2 &&
          rxCo.received.length >= 1,
        { timeoutMs: 30_000, what: "both levels at Northwind (webhook, REST, MongoDB) and Acme's at Contoso" },
      )
      const docs = await mirror.find({ sku: SKU }).sort({ onHand: 1 }).toArray()
      expect(docs.map((d) => [d._id, d.manufacturerId, d.onHand])).to.deep.equal([
        [JSON.stringify({ manufacturerId: org.acme, sku: SKU, locationId: LOC }), org.acme, 10],
        [JSON.stringify({ manufacturerId: org.globex, sku: SKU, locationId: LOC }), org.globex, 20],
      ])
      expect(
        payloads(rxNw)
          .map((v) => [v.manufacturerId, v.onHand])
          .sort(),
      ).to.deep.equal(
        [
          [org.acme, 10],
          [org.globex, 20],
        ].sort(),
      )
      // the REST URL's {key} is the owner-carrying key: two resources, not one overwritten
      expect(new Set(rxNwRest.received.map((r) => r.headers['x-partner-secret']))).to.deep.equal(new Set(['nw-only']))
      await sleep(1500) // Globex's level would have reached Contoso by now, had anything let it through
      expect(payloads(rxCo).map((v) => v.manufacturerId)).to.deep.equal([org.acme])
      // in Kafka: two keys, so compaction keeps both
      const inKafka = (await readOwn('inventory.levels')).filter((r) => r.value?.sku === SKU)
      expect(inKafka.map((r) => JSON.stringify({ ...r.key })).sort()).to.deep.equal(
        [
          JSON.stringify({ manufacturerId: org.acme, sku: SKU, locationId: LOC }),
          JSON.stringify({ manufacturerId: org.globex, sku: SKU, locationId: LOC }),
        ].sort(),
      )
      expect(inKafka.map((r) => r.headers.ce_publisherid).sort()).to.deep.equal([org.acme, org.globex].sort())
    },
  )

  it(
    "the same deal id at two manufacturers: two keys; Northwind gets Acme's deal " +
      "(granted), not Globex's (not granted)",
    async () => {
      const dealId = '0190f5c2-7a1e-7c3b-9d2a-' + Buffer.from(run).toString('hex').slice(0, 12).padEnd(12, '0')
      const deal = (manufacturerId: string) => ({
        dealId,
        manufacturerId,
        partnerId: org.northwind,
        status: 'REGISTERED',
        endCustomer: { name: 'Initech', country: 'DE' },
        lines: [{ sku: SKU, quantity: 1, unitPrice: '10.00' }],
        amount: '10.00',
        currency: 'EUR',
        expectedCloseDate: '2027-01-15',
        registeredAt: Date.now(),
        sequence: 1,
        occurredAt: Date.now(),
      })
      await publish('acme', [deal(org.acme)], 'deal.registered')
      await publish('globex', [deal(org.globex)], 'deal.registered')
      await waitFor(() => payloads(rxNw).some((v) => v.dealId === dealId), { what: "Acme's deal at Northwind" })
      await sleep(1500)
      expect(
        payloads(rxNw)
          .filter((v) => v.dealId === dealId)
          .map((v) => v.manufacturerId),
      ).to.deep.equal([org.acme])
      const inKafka = (await readOwn('deals.registrations')).filter((r) => r.value?.dealId === dealId)
      expect(inKafka.map((r) => r.key.manufacturerId).sort()).to.deep.equal([org.acme, org.globex].sort())
    },
  )

  it(
    'nobody publishes as another: a foreign manufacturerId, a partner profile, a ' +
      'partner key are refused and nothing is produced',
    async () => {
      const forged = await call(
        'POST',
        '/v1/events/inventory.level.changed',
        [level(org.acme, `${SKU}-x`, 1, 1)],
        key.globex,
      )
      expect(forged.status).to.equal(403)
      expect(forged.body.errors[0].field).to.equal('/0/manufacturerId')
      const profile = await call(
        'POST',
        '/v1/events/partner.profile.changed',
        [{ partnerId: org.northwind, legalName: 'Evil', sequence: 99, occurredAt: Date.now() }],
        key.globex,
      )
      expect(profile.status).to.equal(403)
      expect(profile.body.errors[0].field).to.equal('path:eventType')
      expect(
        (
          await call(
            'POST',
            '/v1/events/inventory.level.changed',
            [level(org.northwind, `${SKU}-x`, 1, 1)],
            key.northwind,
          )
        ).status,
      ).to.equal(401)
      const inKafka = (await readOwn('inventory.levels')).filter((r) => r.value?.sku === `${SKU}-x`)
      expect(inKafka).to.deep.equal([])
    },
  )

  it(
    'a MongoDB source publishes as its owner: documents naming another ' + 'manufacturer are refused and reach nobody',
    async () => {
      const srcDb = uniqueName('src').slice(0, 40)
      dropDatabaseLater(srcDb)
      const stock = mongo.db(srcDb).collection('stock')
      const now = Date.now()
      await stock.insertMany([
        {
          sku: `2001-${run}`,
          locationId: LOC,
          locationType: 'WAREHOUSE',
          unitOfMeasure: 'EA',
          onHand: 7,
          reserved: 0,
          available: 7,
          incoming: [],
          sequence: 1,
          updatedAt: new Date(now - 3000),
        },
        {
          manufacturerId: org.acme,
          sku: `2002-${run}`,
          locationId: LOC,
          locationType: 'WAREHOUSE',
          unitOfMeasure: 'EA',
          onHand: 8,
          reserved: 0,
          available: 8,
          incoming: [],
          sequence: 1,
          updatedAt: new Date(now - 2000),
        },
      ])
      const s = await call(
        'POST',
        '/v1/sources',
        {
          name: `globex-db-${run}`,
          kind: 'mongodb',
          config: {
            connectionString: mongoUri(config),
            database: srcDb,
            collection: 'stock',
            mode: 'poll',
            pollIntervalMs: 100,
          },
        },
        key.globex,
      )
      expect(s.status, s.text).to.equal(201)
      const st = await waitFor(
        async () => {
          const r = await call('GET', `/v1/sources/${s.body.id}/status`, undefined, key.globex)
          return r.body?.counts?.produced >= 1 && r.body.position?.refused?.count >= 1 ? r.body : undefined
        },
        { timeoutMs: 30_000, what: 'the source produced one document and refused one' },
      )
      expect(st.counts.produced).to.equal(1)
      expect(st.position.refused.last.reason).to.include(org.acme)
      await waitFor(() => payloads(rxNw).some((v) => v.sku === `2001-${run}`), {
        what: "Globex's document at Northwind",
      })
      expect(payloads(rxNw).find((v) => v.sku === `2001-${run}`)!.manufacturerId).to.equal(org.globex)
      await sleep(1000)
      expect(
        payloads(rxNw).some((v) => v.sku === `2002-${run}`),
        'the forged document',
      ).to.equal(false)
      expect(
        payloads(rxCo).some((v) => String(v.sku).startsWith('2001-')),
        'Contoso never accepted Globex',
      ).to.equal(false)
      expect((await call('DELETE', `/v1/sources/${s.body.id}`, undefined, key.globex)).status).to.equal(204)
    },
  )

  it(
    'a csv-drop source publishes as its owner: a constant naming another is a ' +
      '422, a row naming another goes to the reject file',
    async () => {
      const declare = (constants: Record<string, unknown>) =>
        call(
          'POST',
          '/v1/sources',
          {
            name: `globex-drop-${run}`,
            kind: 'csv-drop',
            config: { dir: 'stock', settleMs: 0, scanIntervalMs: 100, constants },
          },
          key.globex,
        )
      const forged = await declare({ manufacturerId: org.acme, unitOfMeasure: 'EA' })
      expect(forged.status, forged.text).to.equal(422)
      expect(forged.body.errors.map((e: { field: string }) => e.field)).to.deep.equal([
        'config.constants.manufacturerId',
      ])
      const s = await declare({ unitOfMeasure: 'EA', locationType: 'WAREHOUSE' })
      expect(s.status, s.text).to.equal(201)
      const dir = path.join(config.sources.dropRoot, org.globex, 'stock')
      fs.mkdirSync(dir, { recursive: true })
      const rows = [
        'manufacturerId,sku,locationId,onHand,reserved,available',
        `${org.globex},3001-${run},${LOC},5,0,5`,
        `${org.acme},3002-${run},${LOC},6,0,6`,
        `,3003-${run},${LOC},7,0,7`,
      ]
      fs.writeFileSync(path.join(dir, 'levels.csv'), rows.join('\n') + '\n')
      await waitFor(() => fs.existsSync(path.join(dir, 'processed', 'levels.csv')), {
        timeoutMs: 30_000,
        what: 'the file processed',
      })
      const rejects = fs.readFileSync(path.join(dir, 'processed', 'levels.rejects.csv'), 'utf8')
      expect(rejects).to.include(`names manufacturer ${org.acme}, but this source publishes for ${org.globex}`)
      expect(rejects).to.include(`3002-${run}`)
      await waitFor(() => payloads(rxNw).some((v) => v.sku === `3001-${run}`), {
        what: "Globex's own row at Northwind",
      })
      await sleep(1000)
      const got = payloads(rxNw)
        .filter((v) => String(v.sku).startsWith('300'))
        .map((v) => [v.sku, v.manufacturerId])
      expect(got).to.not.deep.include([`3002-${run}`, org.acme])
      expect(
        got.filter(([sku]) => sku === `3002-${run}`),
        'the forged row reaches nobody',
      ).to.deep.equal([])
      expect((await call('DELETE', `/v1/sources/${s.body.id}`, undefined, key.globex)).status).to.equal(204)
    },
  )

  it(
    "a publisher sees its partners' subscriptions without their sinks, and only " + "its own events' deliveries",
    async () => {
      const asAcme = await call('GET', '/v1/subscriptions?limit=200', undefined, key.acme)
      expect(asAcme.status).to.equal(200)
      expect(asAcme.body.items.map((s: any) => s.id).sort()).to.deep.equal(Object.values(sub).sort())
      for (const s of asAcme.body.items) {
        expect(Object.keys(s.sink)).to.deep.equal(['type'])
        for (const hidden of ['deliveryPolicy', 'webhookSecrets', 'filter', 'fields'])
          expect(s).to.not.have.property(hidden)
      }
      expect(asAcme.text).to.not.include(rxNw.url.replace('/hooks', ''))
      expect(asAcme.text).to.not.include('nw-only')
      expect(asAcme.text).to.not.include(mongoUri(config))
      const asGlobex = await call('GET', '/v1/subscriptions?limit=200', undefined, key.globex)
      expect(asGlobex.body.items.map((s: any) => s.id).sort(), 'Contoso never accepted Globex').to.deep.equal(
        [sub.nwHooks, sub.nwRest, sub.nwMirror].sort(),
      )
      expect((await call('GET', `/v1/subscriptions/${sub.coHooks}`, undefined, key.globex)).status).to.equal(404)
      expect((await call('PATCH', `/v1/subscriptions/${sub.nwHooks}`, { name: 'mine' }, key.globex)).status).to.equal(
        403,
      )
      expect((await call('GET', `/v1/grants/${grant.acmeNorthwind}`, undefined, key.globex)).status).to.equal(404)
      // deliveries: Northwind sees both publishers' events; each publisher its own only
      await waitFor(
        async () =>
          (await call('GET', `/v1/subscriptions/${sub.nwHooks}/deliveries?limit=200`, undefined, key.northwind)).body
            .items.length >= 3,
        { what: 'the delivery log' },
      )
      const all = (
        await call('GET', `/v1/subscriptions/${sub.nwHooks}/deliveries?limit=200`, undefined, key.northwind)
      ).body.items.map((d: any) => d.eventId)
      expect(all).to.include.members([eventIds.acme[0], eventIds.globex[0]])
      const acmes = (
        await call('GET', `/v1/subscriptions/${sub.nwHooks}/deliveries?limit=200`, undefined, key.acme)
      ).body.items.map((d: any) => d.eventId)
      expect(acmes).to.include(eventIds.acme[0])
      expect(acmes.filter((id: string) => eventIds.globex.includes(id))).to.deep.equal([])
      expect(
        (await call('GET', `/v1/subscriptions/${sub.nwHooks}/deliveries/${eventIds.globex[0]}`, undefined, key.acme))
          .status,
      ).to.equal(404)
      expect(
        (await call('GET', `/v1/subscriptions/${sub.nwHooks}/deliveries/${eventIds.globex[0]}`, undefined, key.globex))
          .status,
      ).to.equal(200)
      // connectors: state yes, the partner's error text no
      const conn = await call('GET', `/v1/connectors/${sub.nwHooks}`, undefined, key.acme)
      expect(conn.status).to.equal(200)
    },
  )

  it("a snapshot bootstrap delivers both manufacturers' rows of the same SKU and location", async () => {
    const rx = await startReceiver()
    try {
      const s = await call(
        'POST',
        '/v1/subscriptions',
        {
          name: 'snap',
          eventTypes: ['inventory.level.changed'],
          startFrom: 'snapshot',
          filter: { sku: { in: [SKU] } },
          sink: { type: 'webhook', url: rx.url },
        },
        key.northwind,
      )
      expect(s.status, s.text).to.equal(201)
      await waitFor(() => rx.received.length >= 2, {
        timeoutMs: 60_000,
        what: async () =>
          `the snapshot of both rows (got ${rx.received.length}; status ` +
          `${(await call('GET', `/v1/connectors/${s.body.id}/status`, undefined, key.northwind)).text})`,
      })
      await sleep(500)
      expect(
        payloads(rx)
          .map((v) => [v.manufacturerId, v.onHand])
          .sort(),
      ).to.deep.equal(
        [
          [org.acme, 10],
          [org.globex, 20],
        ].sort(),
      )
      expect((await call('DELETE', `/v1/subscriptions/${s.body.id}`, undefined, key.northwind)).status).to.equal(204)
    } finally {
      await rx.close()
    }
  })

  it("a replay from the earliest offset gives Contoso Acme's events again, never Globex's", async () => {
    const before = rxCo.received.length
    const r = await call('POST', `/v1/connectors/${sub.coHooks}/offsets/reset`, { to: 'earliest' }, key.contoso)
    expect(r.status, r.text).to.equal(202)
    await waitFor(
      () =>
        payloads(rxCo)
          .slice(before)
          .some((v) => v.sku === SKU),
      { timeoutMs: 60_000, what: 'the replayed level at Contoso' },
    )
    await sleep(1000)
    const replayed = payloads(rxCo)
      .slice(before)
      .filter((v) => String(v.sku).endsWith(run))
    expect(new Set(replayed.map((v) => v.manufacturerId))).to.deep.equal(new Set([org.acme]))
  })

  it(
    'a tombstone reaches only partners whose accepted grant covers its publisher: ' +
      'a projection deletes that row alone, others never hear of it',
    async () => {
      const { serde } = await p.contracts
      // the ids of the contracts as the platform's producers register them (not "latest": another
      // version of the platform sharing the registry may have registered an older contract after them)
      const keyIds = { id: await serde.register(keySubject('inventory.levels'), contractSchema('inventory-level-key')) }
      const valueSchema = contractSchema('inventory-level')
      await serde.register(valueSubject('inventory.levels'), valueSchema)
      const valueVersion = (await serde.client.lookup(valueSubject('inventory.levels'), valueSchema)).version
      const env = envelope({
        type: 'inventory.level.changed',
        source: '/test/tenancy',
        schemaSubject: valueSubject('inventory.levels'),
        schemaVersion: valueVersion,
      })
      const producer = testKafka().producer()
      await producer.connect()
      try {
        // Globex deletes its row of SKU/LOC (stamped, as the platform's producers stamp)
        await producer.send({
          topic: 'inventory.levels',
          messages: [
            {
              key: serde.encodeSync(keyIds.id, { manufacturerId: org.globex, sku: SKU, locationId: LOC }),
              value: null,
              headers: { ...toHeaders(env), [HEADER.publisherId]: org.globex },
            },
          ],
        })
      } finally {
        await producer.disconnect()
      }
      const mirror = mongo.db(mirrorDb).collection('levels')
      await waitFor(async () => (await mirror.countDocuments({ sku: SKU })) === 1, {
        what: async () => {
          const delivery = await call(
            'GET',
            `/v1/subscriptions/${sub.nwMirror}/deliveries/${env.id}`,
            undefined,
            key.northwind,
          )
          return `Globex's row deleted from the projection (the mirror's delivery of the tombstone: ${delivery.text})`
        },
      })
      expect(
        (await mirror.findOne({ sku: SKU }))!.manufacturerId,
        "Acme's row of the same SKU and location stays",
      ).to.equal(org.acme)
      // Northwind's webhook (Globex accepted) dead-letters it (a webhook has no use for a tombstone) ...
      await waitFor(
        async () =>
          (await call('GET', `/v1/subscriptions/${sub.nwHooks}/deliveries/${env.id}`, undefined, key.northwind)).body
            ?.status === 'dead',
        { what: "the tombstone in Northwind's dead letters" },
      )
      // ... and Contoso, which never accepted Globex, does not even see it in its delivery log
      await sleep(1000)
      expect(
        (await call('GET', `/v1/subscriptions/${sub.coHooks}/deliveries/${env.id}`, undefined, key.contoso)).status,
      ).to.equal(404)
      expect(
        (await call('GET', `/v1/subscriptions/${sub.coHooks}/dead-letters`, undefined, key.contoso)).body.items,
      ).to.deep.equal([])
    },
  )

  it(
    'the partner ends a relationship: nothing more of that publisher, live or ' + 'through a dead-letter retry',
    async () => {
      // a Globex level the partner refuses (422): dead-lettered at once
      const [refused] = await publish('globex', [level(org.globex, `1003-${run}`, 3, 1)])
      await waitFor(
        async () =>
          (await call('GET', `/v1/subscriptions/${sub.nwHooks}/deliveries/${refused}`, undefined, key.northwind)).body
            ?.status === 'dead',
        { what: 'the dead letter' },
      )
      rxNw.setHandler((_r, res) => res.writeHead(204).end()) // the partner would take it now
      expect((await call('DELETE', `/v1/grants/${grant.globexNorthwind}`, undefined, key.northwind)).status).to.equal(
        204,
      )
      expect((await call('GET', `/v1/grants/${grant.globexNorthwind}`, undefined, key.globex)).status).to.equal(404)
      await sleep(1500) // the workers read grants every poll
      await publish('globex', [level(org.globex, `1004-${run}`, 4, 1)])
      await publish('acme', [level(org.acme, `1004-${run}`, 4, 1)])
      const retry = await call('POST', `/v1/subscriptions/${sub.nwHooks}/dead-letters/retry`, {}, key.northwind)
      expect(retry.status, retry.text).to.equal(202)
      await waitFor(() => payloads(rxNw).some((v) => v.sku === `1004-${run}`), {
        what: "Acme's level after the revocation",
      })
      await waitFor(
        async () =>
          (
            await call('GET', `/v1/subscriptions/${sub.nwHooks}/deliveries/${refused}`, undefined, key.northwind)
          ).body?.deadReason?.includes('not entitled'),
        { what: 'the retry refused as not entitled' },
      )
      await sleep(1000)
      const got = payloads(rxNw)
        .filter((v) => v.sku === `1004-${run}` || v.sku === `1003-${run}`)
        .map((v) => [v.sku, v.manufacturerId])
      // 1003 reached the receiver once, when it was refused (before the revocation); never again
      expect(got.filter(([sku]) => sku === `1003-${run}`)).to.have.length(1)
      expect(got.filter(([sku]) => sku === `1004-${run}`)).to.deep.equal([[`1004-${run}`, org.acme]])
    },
  )
})
