/**
 * `distributary demo`: the platform at work in a few minutes, on the local stack (or the configured
 * servers). It starts the platform in this process (its own database, ephemeral ports), creates a
 * manufacturer and two distributors with different grants, their signed-webhook receivers and a
 * MongoDB projection, streams a catalogue of stock changes and a few deal registrations through
 * POST /v1/events, and shows live what each partner received, and what it did not because of its
 * grant. Ctrl-C (or the end of a bounded run: --events N) stops it cleanly: it waits for the last
 * deliveries, prints a summary, stops the platform (and the local stack when it started it) and drops
 * the demo's databases, so nothing is left running.
 */
import { randomBytes, randomUUID } from 'node:crypto'
import { MongoClient } from 'mongodb'
import { createManagementClient, data, type Schemas } from '../client/index.ts'
import { createLogger } from '../common/logger.ts'
import { generateKeyRingEntry } from '../common/secret-box.ts'
import { loadConfig, mongoUri, type AppConfig } from '../config/index.ts'
import { stackDown, stackSettings, stackStatus } from '../stack/index.ts'
import { startPlatform } from './platform.ts'
import { runDealScene, type DealSceneSummary, type SceneEvent } from './demo-deals.ts'
import { startReceiver, type Receiver } from './demo-receiver.ts'
import { TOPICS } from '../schemas/topics.ts'

export interface DemoOptions {
  /** Stock changes to publish, then stop (a bounded run); absent: until Ctrl-C. */
  events?: number
  /** Stock changes per second. */
  rate?: number
  /** Print the summary as JSON on stdout (the live view goes to stderr either way). */
  json?: boolean
  signal?: AbortSignal
  out?: NodeJS.WritableStream & { isTTY?: boolean }
  err?: NodeJS.WritableStream & { isTTY?: boolean }
}

const LOCATIONS = ['DE-HAM-1', 'FR-PAR-1', 'US-CHI-1', 'US-DAL-1'] as const
const PRODUCTS = [
  'DRL-2000',
  'DRL-2100',
  'SAW-310',
  'SAW-320',
  'GRN-115',
  'GRN-125',
  'BAT-18V2',
  'BAT-18V5',
  'CHG-FAST',
  'LVL-60',
  'MTR-5M',
  'KIT-PRO',
]
/** What the tier-2 distributor may see of a stock level (no on-hand, reserved or incoming). */
const TIER2_FIELDS = ['manufacturerId', 'sku', 'locationId', 'unitOfMeasure', 'available', 'sequence', 'occurredAt']
const TIER2_LOCATIONS = ['DE-HAM-1', 'FR-PAR-1']

interface Partner {
  name: string
  id: string
  /** Locations its grant covers (all: undefined). */
  locations?: readonly string[]
  /** Fields its grant shows (all: undefined). */
  fields?: readonly string[]
  receiver: Receiver
  projection?: { db: string; collection: string }
}

export interface DemoPartnerSummary {
  name: string
  grant: { locations: string[] | 'all'; fields: string[] | 'all'; deals: 'own' }
  webhook: {
    stockReceived: number
    stockExpected: number
    stockWithheldByGrant: number
    dealsReceived: number
    dealsExpected: number
    dealsWithheldByGrant: number
    foreignDeals: number
    badSignatures: number
    fieldsSeen: string[]
    locationsSeen: string[]
  }
  mongodb?: { documents: number; keysExpected: number; upToDate: number }
}

export interface DemoSummary {
  published: { stock: number; deals: number }
  partners: DemoPartnerSummary[]
  /** Deal registration with the manufacturer's CRM in the loop (cli/demo-deals.ts). */
  dealRegistration: DealSceneSummary
  complete: boolean
}

export async function runDemo(base: AppConfig, options: DemoOptions = {}): Promise<DemoSummary> {
  const err = options.err ?? process.stderr
  const out = options.out ?? process.stdout
  const say = (msg: string) => err.write(`demo: ${msg}\n`)
  const rate = Math.max(1, options.rate ?? 40)
  const runId = `${new Date().toISOString().slice(0, 10).replace(/-/g, '')}-${randomBytes(3).toString('hex')}`
  const controlDb = `distributary-demo-${runId}`
  const projectionDb = `distributary-demo-northwind-${runId}`
  const adminKey = randomBytes(32).toString('base64url')
  const config = loadConfig({
    overrides: {
      http: { host: '127.0.0.1', port: 0 },
      schemaRegistry: { port: 0 },
      mongodb: { database: controlDb },
      management: { adminApiKey: adminKey },
      secrets: {
        encryptionKeys: base.secrets.encryptionKeys || generateKeyRingEntry(`demo${randomBytes(2).toString('hex')}`),
      },
      // the demo's receivers and projection database are on this machine
      urlGuard: { allowlist: [base.urlGuard.allowlist, '127.0.0.1'].filter((s) => s !== '').join(',') },
      worker: { statusIntervalMs: 1000 },
    },
  })
  const logger = createLogger({
    level: 'error',
    bindings: { service: 'distributary', role: 'demo' },
    write: (line) => err.write(line.endsWith('\n') ? line : `${line}\n`),
  })

  say('starting the platform (the local stack comes up first when no external servers are configured)')
  const stack = stackSettings(config)
  const stackWasUp = stack.services.length === 0 || (await stackStatus(stack)).every((s) => s.state === 'running')
  const platform = await startPlatform(config, logger, { roles: 'all', stopStackOnClose: false })
  const receivers: Receiver[] = []
  const mongo = new MongoClient(mongoUri(config))
  let stopRequested = false
  const onAbort = () => {
    if (!stopRequested) say('stopping: waiting for the last deliveries')
    stopRequested = true
  }
  options.signal?.addEventListener('abort', onAbort)
  try {
    await platform.contracts
    await platform.worker
    const api = createManagementClient({ baseUrl: platform.url, apiKey: adminKey })

    say('creating the manufacturer Acme Components and its publisher key')
    const acme = await data(
      api.POST('/organizations', { body: { kind: 'publisher', name: 'Acme Components', slug: 'acme-components' } }),
    )
    const publisherKey = (
      await data(api.POST('/api-keys', { body: { scope: 'publisher', name: 'acme-erp', organizationId: acme.id } }))
    ).key
    const publisher = createManagementClient({ baseUrl: platform.url, apiKey: publisherKey })
    const dealTypes = [...TOPICS.dealRegistrations.eventTypes]
    const sceneEvents: SceneEvent[] = []

    const partners: Partner[] = []
    const definitions = [
      {
        name: 'Northwind Distribution',
        slug: 'northwind',
        profile: { partnerType: 'DISTRIBUTOR', tier: 'GOLD', headquartersCountry: 'DE' },
        projection: true,
      },
      {
        name: 'Contoso Supply',
        slug: 'contoso',
        profile: { partnerType: 'DISTRIBUTOR', tier: 'SILVER', headquartersCountry: 'FR' },
        locations: TIER2_LOCATIONS,
        fields: TIER2_FIELDS,
      },
    ]
    for (const def of definitions) {
      const org = await data(
        api.POST('/organizations', { body: { kind: 'partner', name: def.name, slug: def.slug, profile: def.profile } }),
      )
      const stock: Schemas['Entitlement'] = { eventType: 'inventory.level.changed' }
      if (def.locations) stock.filter = { locationId: { in: [...def.locations] } }
      if (def.fields) stock.fields = [...def.fields]
      const grant = await data(
        api.POST('/grants', {
          body: {
            publisherId: acme.id,
            partnerId: org.id,
            entitlements: [
              stock,
              ...dealTypes.map((eventType) => ({ eventType, filter: { partnerId: { in: ['$partnerId'] } } })),
            ],
          },
        }),
      )
      // A grant is an offer until the partner accepts it (the demo's admin key acts for the partner here).
      await data(api.POST('/grants/{grantId}/accept', { params: { path: { grantId: grant.id } }, body: {} }))
      const secretRef = { secret: '' }
      const receiver = await startReceiver(secretRef, () => org.id, sceneEvents)
      receivers.push(receiver)
      const sub = await data(
        api.POST('/subscriptions', {
          body: {
            partnerId: org.id,
            name: `${def.slug}-webhook`,
            eventTypes: ['inventory.level.changed', ...dealTypes],
            startFrom: 'latest',
            sink: { type: 'webhook', url: receiver.url },
          },
        }),
      )
      secretRef.secret = sub.webhookSecret ?? ''
      const partner: Partner = {
        name: def.name,
        id: org.id,
        receiver,
        ...(def.locations ? { locations: def.locations } : {}),
        ...(def.fields ? { fields: def.fields } : {}),
      }
      if (def.projection) {
        partner.projection = { db: projectionDb, collection: 'stock_levels' }
        await data(
          api.POST('/subscriptions', {
            body: {
              partnerId: org.id,
              name: `${def.slug}-stock-projection`,
              eventTypes: ['inventory.level.changed'],
              startFrom: 'latest',
              sink: {
                type: 'mongodb',
                connectionString: mongoUri(config),
                database: projectionDb,
                collection: 'stock_levels',
              },
            },
          }),
        )
      }
      partners.push(partner)
      say(
        `${def.name}: grant ${def.locations ? `locations ${def.locations.join(', ')}` : 'every location'}, ` +
          `${def.fields ? `fields ${def.fields.join(', ')}` : 'every field'}, own ` +
          (`deals only; webhook ` +
            `${receiver.url}${def.projection ? `, MongoDB projection ${projectionDb}.stock_levels` : ''}`),
      )
    }

    // Every subscription running before the first event (they start at "latest").
    const deadline = Date.now() + 60_000
    for (;;) {
      const connectors = (await data(api.GET('/connectors', { params: { query: { limit: 50 } } }))).items
      if (connectors.length >= 3 && connectors.every((c) => c.status.state === 'running')) break
      if (Date.now() > deadline)
        throw new Error(
          `the subscriptions did not start within 60 s: ${JSON.stringify(connectors.map((c) => c.status.state))}`,
        )
      await new Promise((r) => setTimeout(r, 250))
    }

    // Deal registration: partners register, the manufacturer's CRM decides, both partners see their outcome.
    const dealRegistration = await runDealScene({
      url: platform.url,
      api,
      publisher,
      publisherId: acme.id,
      client: (key) => createManagementClient({ baseUrl: platform.url, apiKey: key }),
      partners: { northwind: partners[0]!.id, contoso: partners[1]!.id },
      received: sceneEvents,
      say,
    })

    // Stream: stock changes at `rate`/s over the catalogue, a deal registration every 25 changes.
    const sequences = new Map<string, number>()
    const levels = new Map<string, number>()
    const published = { stock: 0, deals: 0 }
    const expected = partners.map(() => ({ stock: 0, deals: 0, keys: new Map<string, number>() }))
    const live = err.isTTY === true
    let lastDraw = 0
    let drawnLines = 0
    const draw = (force = false) => {
      const now = Date.now()
      if (!force && now - lastDraw < (live ? 500 : 5000)) return
      lastDraw = now
      const lines = [`published: ${published.stock} stock changes, ${published.deals} deal registrations`]
      partners.forEach((p, i) => {
        const e = expected[i]!
        lines.push(
          `  ${p.name.padEnd(24)} received ` +
            `${String(p.receiver.stockCount).padStart(5)} stock, ` +
            `${String(p.receiver.deals).padStart(3)} deals` +
            (`   withheld by grant ${String(published.stock - e.stock).padStart(5)} ` +
              `stock, ${String(published.deals - e.deals).padStart(3)} deals`) +
            `   fields: ${[...p.receiver.fieldsSeen].length || '-'}`,
        )
      })
      if (live && drawnLines > 0) err.write(`\u001b[${drawnLines}A`)
      for (const l of lines) err.write(live ? `${l}\u001b[K\n` : `${l}\n`)
      drawnLines = live ? lines.length : 0
    }
    say(
      `streaming ${options.events ? `${options.events} stock changes` : 'stock changes until Ctrl-C'} ` +
        `at ${rate}/s, and a deal registration every 25`,
    )
    const tickMs = 200
    const perTick = Math.max(1, Math.round((rate * tickMs) / 1000))
    while (!stopRequested && (options.events === undefined || published.stock < options.events)) {
      const started = Date.now()
      const n = Math.min(perTick, options.events === undefined ? perTick : options.events - published.stock)
      const batch: Schemas['InventoryLevelEvent'][] = []
      for (let i = 0; i < n; i++) {
        const sku = PRODUCTS[Math.floor(Math.random() * PRODUCTS.length)]!
        const locationId = LOCATIONS[Math.floor(Math.random() * LOCATIONS.length)]!
        const key = `${sku}@${locationId}`
        const sequence = (sequences.get(key) ?? 0) + 1
        sequences.set(key, sequence)
        const onHand = Math.max(0, (levels.get(key) ?? 200) + Math.floor(Math.random() * 41) - 20)
        levels.set(key, onHand)
        const reserved = Math.floor(onHand / 10)
        batch.push({
          manufacturerId: acme.id,
          sku,
          locationId,
          locationType: 'WAREHOUSE',
          unitOfMeasure: 'EA',
          onHand,
          reserved,
          available: onHand - reserved,
          incoming:
            onHand < 100
              ? [
                  {
                    quantity: 250,
                    expectedDate: new Date(Date.now() + 7 * 86_400_000).toISOString().slice(0, 10),
                    reference: `PO-${sequence}`,
                  },
                ]
              : [],
          sequence,
          occurredAt: new Date().toISOString(),
        })
        partners.forEach((p, j) => {
          if (p.locations && !p.locations.includes(locationId)) return
          expected[j]!.stock++
          expected[j]!.keys.set(key, sequence)
        })
      }
      if (batch.length > 0) {
        await data(publisher.POST('/events/inventory.level.changed', { body: batch }))
        published.stock += batch.length
      }
      if (Math.floor(published.stock / 25) > published.deals) {
        const who = partners[published.deals % partners.length]!
        const sku = PRODUCTS[published.deals % PRODUCTS.length]!
        await data(
          publisher.POST('/events/{eventType}', {
            params: { path: { eventType: 'deal.registered' } },
            body: [
              {
                dealId: randomUUID(),
                manufacturerId: acme.id,
                partnerId: who.id,
                status: 'REGISTERED',
                endCustomer: { name: `End customer ${published.deals + 1}`, country: 'DE' },
                lines: [{ sku, quantity: 10 + published.deals, unitPrice: '199.00' }],
                amount: `${(199 * (10 + published.deals)).toFixed(2)}`,
                currency: 'EUR',
                expectedCloseDate: new Date(Date.now() + 30 * 86_400_000).toISOString().slice(0, 10),
                registeredAt: new Date().toISOString(),
                sequence: 1,
                occurredAt: new Date().toISOString(),
              },
            ],
          }),
        )
        published.deals++
        expected[partners.indexOf(who)]!.deals++
      }
      draw()
      await new Promise((r) => setTimeout(r, Math.max(0, tickMs - (Date.now() - started))))
    }

    // Let the last deliveries arrive (bounded), then the summary.
    await mongo.connect()
    const projectionState = async (p: Partner) => {
      if (!p.projection) return undefined
      const docs = await mongo.db(p.projection.db).collection(p.projection.collection).find({}).toArray()
      const keysExpected = expected[partners.indexOf(p)]!.keys
      let upToDate = 0
      for (const d of docs) {
        const v = (d.value ?? d) as Record<string, unknown>
        if (keysExpected.get(`${String(v.sku)}@${String(v.locationId)}`) === Number(v.sequence)) upToDate++
      }
      return { documents: docs.length, keysExpected: keysExpected.size, upToDate }
    }
    const settled = async () => {
      for (const [i, p] of partners.entries()) {
        const e = expected[i]!
        if (p.receiver.stockCount < e.stock || p.receiver.deals < e.deals) return false
        const proj = await projectionState(p).catch(() => undefined)
        if (p.projection && (!proj || proj.upToDate < proj.keysExpected)) return false
      }
      return true
    }
    const settleBy = Date.now() + 60_000
    let complete = await settled()
    while (
      !complete &&
      Date.now() < settleBy &&
      !(stopRequested && options.signal?.aborted && Date.now() > settleBy - 45_000)
    ) {
      draw()
      await new Promise((r) => setTimeout(r, 500))
      complete = await settled()
    }
    draw(true)

    const summary: DemoSummary = {
      published,
      partners: [],
      dealRegistration,
      complete: complete && dealRegistration.complete,
    }
    for (const [i, p] of partners.entries()) {
      const e = expected[i]!
      const proj = await projectionState(p)
      summary.partners.push({
        name: p.name,
        grant: {
          locations: p.locations ? [...p.locations] : 'all',
          fields: p.fields ? [...p.fields] : 'all',
          deals: 'own',
        },
        webhook: {
          stockReceived: p.receiver.stockCount,
          stockExpected: e.stock,
          stockWithheldByGrant: published.stock - e.stock,
          dealsReceived: p.receiver.deals,
          dealsExpected: e.deals,
          dealsWithheldByGrant: published.deals - e.deals,
          foreignDeals: p.receiver.foreignDeals,
          badSignatures: p.receiver.badSignatures,
          fieldsSeen: [...p.receiver.fieldsSeen].sort(),
          locationsSeen: [...p.receiver.locationsSeen].sort(),
        },
        ...(proj ? { mongodb: proj } : {}),
      })
    }
    if (options.json) out.write(JSON.stringify(summary) + '\n')
    else {
      const verdict = complete
        ? 'Every partner received everything its grant allows, and nothing else.'
        : 'Not every delivery arrived in time (see the counts above).'
      out.write(`\n${verdict}\n`)
      const d = dealRegistration
      out.write(
        `Deal registration: Northwind's ${d.northwind.registered} deal was ` +
          `${d.northwind.outcome ?? 'not decided in time'}; ` +
          `Contoso's (${d.contoso.registered}) was ${d.contoso.outcome ?? 'not decided in time'}; ` +
          `the CRM received ${d.crmReceived} steps; ${d.crossDelivered} events reached the other partner\n`,
      )
      for (const p of summary.partners) {
        const projection = p.mongodb
          ? `; MongoDB projection: ${p.mongodb.documents} documents, ` +
            `${p.mongodb.upToDate} of ${p.mongodb.keysExpected} keys at their latest version`
          : ''
        out.write(
          `${p.name}: ${p.webhook.stockReceived} stock changes ` +
            `(${p.webhook.stockWithheldByGrant} withheld by its grant), ` +
            `${p.webhook.dealsReceived} own deals (${p.webhook.dealsWithheldByGrant} of ` +
            `other partners withheld); ` +
            `fields it saw: ${p.webhook.fieldsSeen.join(', ')}${projection}\n`,
        )
      }
    }
    return summary
  } finally {
    options.signal?.removeEventListener('abort', onAbort)
    say('stopping the platform and removing the demo data')
    await platform.close().catch((e: unknown) => say(`platform close failed: ${String(e)}`))
    await Promise.all(receivers.map((r) => r.close()))
    try {
      await mongo.connect()
      for (const name of [controlDb, projectionDb])
        await mongo
          .db(name)
          .dropDatabase()
          .catch(() => undefined)
    } catch {
      // the store is gone: nothing to remove
    }
    await mongo.close().catch(() => undefined)
    if (!stackWasUp)
      await stackDown(stack, (msg) => say(`stack: ${msg}`)).catch((e: unknown) =>
        say(`stack down failed: ${String(e)}`),
      )
  }
}
