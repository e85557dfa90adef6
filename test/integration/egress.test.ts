/**
 * Egress pinned to what the URL guard checked, against real sockets: an injected resolver answers a
 * host name (`localhost`, which the system resolver maps to 127.0.0.1, so that a client resolving on
 * its own would reach the listener) first with an approved address and then with 127.0.0.1 (DNS
 * rebinding). The loopback allowance is off: no connection may reach the listener on 127.0.0.1,
 * whose accepted sockets are counted, for the HTTP client (webhook and REST sinks), the MongoDB sink
 * pool and the MongoDB source. Where an approved address must really answer, 127.0.0.2 stands in for
 * a public address (allowlisted alone). And a host that does not resolve is a retriable failure: the
 * subscription stays active, retries, and delivers once the name resolves.
 */
import { expect } from 'chai'
import type { Db, MongoClient } from 'mongodb'
import { EndpointDisabledError, RetriableError, UrlRefusedError } from '../../common/errors.ts'
import { createLogger } from '../../common/logger.ts'
import { createSecretBox, generateKeyRingEntry, parseKeyRing } from '../../common/secret-box.ts'
import { createUrlGuard, type LookupFn } from '../../common/url-guard.ts'
import { mongoUri } from '../../config/index.ts'
import type { SinkRecord } from '../../connectors/sink/types.ts'
import { HttpSinkClient, type HttpCall } from '../../consumers/http/index.ts'
import { sinkFactoryByType } from '../../consumers/index.ts'
import {
  MongoClientPool,
  MongoProjectionSink,
  guardConnection,
  parseConnectionString,
} from '../../consumers/mongodb/index.ts'
import { WebhookClient, webhookSinkFactory } from '../../consumers/webhook/index.ts'
import { RequestInvalidError } from '../../control-plane/errors.ts'
import { SourceRegistry } from '../../control-plane/sources.ts'
import { collections, ensureIndexes } from '../../control-plane/store.ts'
import { SOURCE_PLUGINS } from '../../producers/plugins.ts'
import { dropDatabaseLater, testConfig, testMongo, uniqueName, waitFor } from '../helpers/env.ts'
import { startReceiver, type Receiver } from '../helpers/receiver.ts'
import { ADMIN, startSinkHarness, type SinkHarness } from '../helpers/sink-runtime.ts'
import { startWireProxy, type WireProxy } from '../helpers/wire-proxy.ts'

const silent = createLogger({ write: () => {} })
const PUBLIC = '93.184.216.34'

/** A resolver for `localhost` that answers `first` for its first `times` questions, then 127.0.0.1; `asked` counts. */
function rebinding(first: string, times = 1): LookupFn & { asked: number; flip(): void } {
  const fn = Object.assign(
    async (host: string) => {
      if (host !== 'localhost') throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' })
      fn.asked++
      return [{ address: fn.asked <= times ? first : '127.0.0.1', family: 4 }]
    },
    { asked: 0, flip: () => (times = 0) },
  )
  return fn
}

async function failure(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => expect.fail('expected a failure'),
    (e: unknown) => e,
  )
}

const post = (url: string): HttpCall => ({
  method: 'POST',
  url,
  headers: { 'content-type': 'application/json' },
  body: '{}',
  timeoutMs: 2000,
})

describe('egress pinned to what the URL guard checked', function () {
  this.timeout(60_000)
  const closers: Array<() => Promise<unknown>> = []
  afterEach(async () => {
    for (const c of closers.splice(0).reverse()) await c().catch(() => undefined)
  })
  const receiver = async (
    options: { host?: string; port?: number; handler?: Parameters<typeof startReceiver>[0] } = {},
  ): Promise<Receiver> => {
    const r = await startReceiver(options.handler, options)
    closers.push(() => r.close())
    return r
  }
  const mongoTarget = () => parseConnectionString(mongoUri(testConfig())).hosts[0]!
  const wireProxy = async (listen: { host: string; port?: number }): Promise<WireProxy> => {
    const p = await startWireProxy(mongoTarget(), () => 'forward', listen)
    closers.push(() => p.close())
    return p
  }

  describe('HTTP client (webhook and REST sinks, OAuth token calls)', () => {
    it(
      'DNS rebinding: the save-time check sees a public address, the connect sees ' +
        '127.0.0.1: refused, no connection to loopback',
      async () => {
        const loopback = await receiver()
        const lookup = rebinding(PUBLIC)
        const guard = createUrlGuard({ lookup }) // no allowlist: the loopback allowance is off
        const url = `http://localhost:${loopback.port}/hooks`
        expect((await guard.check(url)).addresses).to.deep.equal([PUBLIC]) // what the API saw when the URL was saved
        const client = new HttpSinkClient({ guard })
        closers.push(() => client.close())
        for (let i = 0; i < 3; i++) {
          const { error } = await client.call(post(url), `evt-${i}`)
          expect(error).to.be.instanceOf(EndpointDisabledError)
          expect((error as EndpointDisabledError).reason).to.equal('url-refused')
          expect(error!.message).to.match(/localhost resolves to 127\.0\.0\.1.*loopback/)
        }
        expect(loopback.connections, 'sockets accepted on 127.0.0.1').to.equal(0)
        expect(loopback.received).to.have.length(0)
        expect(lookup.asked, 'every connect asked the guard').to.equal(4)
      },
    )

    it(
      'a new connection after a kept-alive one ended resolves through the guard ' +
        'again: the rebound address is refused',
      async () => {
        // 127.0.0.2 stands in for the public address (allowlisted alone); it closes the connection after the second
        // call
        const approved = await receiver({
          host: '127.0.0.2',
          handler: (_r, res, i) => res.writeHead(204, i === 1 ? { connection: 'close' } : {}).end(),
        })
        const loopback = await receiver({ host: '127.0.0.1', port: approved.port })
        const lookup = rebinding('127.0.0.2')
        // one connection per origin: the second call waits for the kept-alive one instead of racing its release
        const client = new HttpSinkClient({
          guard: createUrlGuard({ allowlist: '127.0.0.2', lookup }),
          connectionsPerOrigin: 1,
        })
        closers.push(() => client.close())
        const url = `http://localhost:${approved.port}/hooks`
        expect((await client.call(post(url), 'e1')).error).to.equal(undefined)
        expect((await client.call(post(url), 'e2')).error).to.equal(undefined) // the same kept-alive connection
        expect([approved.received.length, approved.connections, lookup.asked]).to.deep.equal([2, 1, 1])
        const { error } = await client.call(post(url), 'e3')
        expect(error).to.be.instanceOf(EndpointDisabledError)
        expect((error as EndpointDisabledError).reason).to.equal('url-refused')
        expect(loopback.connections, 'sockets accepted on 127.0.0.1').to.equal(0)
        expect(approved.received).to.have.length(2)
      },
    )

    it('a host that does not resolve is retriable, not a refusal', async () => {
      const client = new HttpSinkClient({ guard: createUrlGuard({ lookup: rebinding(PUBLIC) }) })
      closers.push(() => client.close())
      const { error, report } = await client.call(post('http://hooks.partner.invalid/in'), 'e1')
      expect(error).to.be.instanceOf(RetriableError)
      expect(error!.context).to.include({ reason: 'unresolvable', host: 'hooks.partner.invalid' })
      expect(report.outcome).to.equal('retriable')
    })
  })

  describe('MongoDB', () => {
    const mongo: MongoClient = testMongo() // connects on its first operation
    after(() => mongo.close())
    let dbName: string
    beforeEach(() => dropDatabaseLater((dbName = uniqueName('egress').slice(0, 40))))
    const rec = (offset: number): SinkRecord => ({
      topic: 'inventory.levels',
      partition: 0,
      offset: String(offset),
      key: `SKU-${offset}`,
      value: { onHand: offset },
      headers: {},
      eventId: `evt-${offset}`,
      eventType: 'inventory.level.changed',
      timestamp: Date.now(),
    })

    it(
      'sink pool, DNS rebinding: the save-time check sees a public address, the ' +
        'driver connects through the guard: refused, no connection to loopback',
      async () => {
        // in front of the real server: a connection here would write into it
        const loopback = await wireProxy({ host: '127.0.0.1' })
        const lookup = rebinding(PUBLIC)
        const guard = createUrlGuard({ lookup })
        const cs = `mongodb://localhost:${loopback.port}/?directConnection=true`
        await guardConnection(parseConnectionString(cs), guard) // what the API saw when the subscription was saved
        const pool = new MongoClientPool({
          guard,
          logger: silent,
          settings: { serverSelectionTimeoutMs: 3000, connectTimeoutMs: 1000 },
        })
        closers.push(() => pool.close())
        const sink = new MongoProjectionSink(pool)
        const err = await failure(
          sink.start(
            { connectionString: cs, database: dbName, collection: 'levels' },
            { subscriptionId: 'sub-rebind', logger: silent },
          ),
        )
        expect(err).to.be.instanceOf(UrlRefusedError)
        expect((err as Error).message).to.match(
          /MongoDB host localhost refused: .*localhost resolves to 127\.0\.0\.1.*loopback/,
        )
        expect(loopback.connections, 'sockets accepted on 127.0.0.1').to.equal(0)
        expect(lookup.asked).to.be.at.least(2)
        expect(pool.clients).to.equal(0)
      },
    )

    it(
      'sink pool: a reconnect after the address changed is refused, the client ' +
        'closed and the writes disabled, with no connection to loopback',
      async () => {
        const approved = await wireProxy({ host: '127.0.0.2' })
        const loopback = await wireProxy({ host: '127.0.0.1', port: approved.port })
        const lookup = rebinding('127.0.0.2', Infinity)
        const pool = new MongoClientPool({
          guard: createUrlGuard({ allowlist: '127.0.0.2', lookup }),
          logger: silent,
          settings: { serverSelectionTimeoutMs: 2000, connectTimeoutMs: 1000 },
        })
        closers.push(() => pool.close())
        const sink = new MongoProjectionSink(pool)
        closers.push(() => sink.stop())
        await sink.start(
          {
            connectionString: `mongodb://localhost:${approved.port}/?directConnection=true`,
            database: dbName,
            collection: 'levels',
          },
          { subscriptionId: 'sub-reconnect', logger: silent },
        )
        await sink.put([rec(1)])
        expect(await mongo.db(dbName).collection('levels').countDocuments()).to.equal(1)
        // the name now resolves to loopback, and the connections to the approved address end
        lookup.flip()
        await approved.close()
        const disabled = await waitFor(
          async () => {
            const e = await sink.put([rec(2)]).then(
              () => null,
              (x: unknown) => x,
            )
            return e instanceof EndpointDisabledError ? e : undefined
          },
          { timeoutMs: 20_000, what: 'writes disabled by the refusal' },
        )
        expect(disabled.reason).to.equal('url-refused')
        expect(loopback.connections, 'sockets accepted on 127.0.0.1').to.equal(0)
        expect(await mongo.db(dbName).collection('levels').countDocuments()).to.equal(1)
      },
    )

    it(
      'source: the connection string is guarded when saved (422 naming ' +
        'config.connectionString) and at every connect (no connection to loopback)',
      async () => {
        const db: Db = mongo.db(dbName)
        await ensureIndexes(db)
        const cols = collections(db)
        const now = new Date()
        await cols.organizations.insertOne({
          _id: 'org_000000000000000000000001',
          kind: 'publisher',
          name: 'Acme',
          slug: 'acme',
          profile: {},
          createdAt: now,
          updatedAt: now,
          version: 1,
        })
        const lookup = rebinding(PUBLIC)
        const guard = createUrlGuard({ lookup })
        const sources = new SourceRegistry(cols, createSecretBox(parseKeyRing(generateKeyRingEntry('e1'))), {
          dropRoot: '/nonexistent/drop',
          urlGuard: guard,
        })
        const input = (connectionString: string) => ({
          name: uniqueName('inv').slice(0, 40),
          kind: 'mongodb' as const,
          publisherId: 'org_000000000000000000000001',
          desiredState: 'stopped' as const,
          config: { connectionString, database: 'inv', collection: 'stock', mode: 'poll' },
        })
        for (const cs of [
          'mongodb://127.0.0.1:27017/',
          'mongodb://u:secret-pw@[::ffff:a9fe:a9fe]/',
          'mongodb://[64:ff9b::a00:1]/',
          'mongodb://db.example.com/?proxyHost=10.0.0.1',
        ]) {
          const err = await failure(sources.create(ADMIN, input(cs)))
          expect(err, cs).to.be.instanceOf(RequestInvalidError)
          expect(
            (err as RequestInvalidError).errors.map((e) => e.field),
            cs,
          ).to.deep.equal(['config.connectionString'])
          expect(JSON.stringify((err as RequestInvalidError).errors)).to.not.contain('secret-pw')
        }
        const loopback = await wireProxy({ host: '127.0.0.1' })
        const doc = await sources.create(ADMIN, input(`mongodb://localhost:${loopback.port}/?directConnection=true`)) // the save-time answer is public
        const built = SOURCE_PLUGINS.mongodb.build(sources.openConfig(doc), {
          guard,
          owner: sources.ownerOf(doc.publisherId),
        })
        closers.push(() => built.close())
        const err = await failure(
          built.connector.start(built.config, {
            name: doc.name,
            source: `/sources/mongodb/${doc.name}`,
            logger: silent,
            signal: new AbortController().signal,
          }),
        )
        expect(err).to.be.instanceOf(UrlRefusedError)
        expect((err as Error).message).to.match(/localhost resolves to 127\.0\.0\.1.*loopback/)
        expect(await failure(built.connector.poll())).to.be.instanceOf(UrlRefusedError)
        expect(loopback.connections, 'sockets accepted on 127.0.0.1').to.equal(0)
      },
    )
  })

  describe('sink worker', () => {
    let h: SinkHarness
    afterEach(async () => {
      await h?.close()
    })

    it(
      'a subscription whose host does not resolve stays active and retries, and ' + 'delivers once the name resolves',
      async () => {
        h = await startSinkHarness({ partitions: 1 })
        const rx = await receiver()
        let resolves = false
        const guard = createUrlGuard({
          allowlist: '127.0.0.1',
          lookup: async (host) => {
            if (resolves && host === 'hooks.partner.invalid') return [{ address: '127.0.0.1', family: 4 }]
            throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' })
          },
        })
        const client = new WebhookClient({ guard })
        closers.push(() => client.close())
        // saved although the name does not resolve now (the control plane's guard uses the system resolver)
        const sub = await h.subscribe({
          name: 'nxdomain',
          url: `http://hooks.partner.invalid:${rx.port}/hooks`,
          deliveryPolicy: { retrySchedule: Array(50).fill(0.2), timeoutMs: 2000 },
        })
        await h.worker({}, {}, sinkFactoryByType({ webhook: webhookSinkFactory(client, h.cp, 2000) }))
        const ids = await h.produce([1, 2, 3].map((seq) => ({ sku: 'SKU-1', seq })))
        const first = await waitFor(
          async () => {
            const d = await h.cp.deliveries.get(sub.id, ids[0]!)
            return d && d.attemptCount >= 4 ? d : undefined
          },
          { what: 'four attempts of the first event' },
        )
        expect(first.status).to.equal('retrying')
        for (const a of first.attempts)
          expect(a.error).to.match(/^RETRIABLE: host hooks\.partner\.invalid does not resolve now \(ENOTFOUND\)/)
        const status = await waitFor(
          async () => {
            const st = (await h.cp.getConnector(ADMIN, sub.id)).status
            return st?.lastError ? st : undefined
          },
          { what: 'the last error in the status' },
        )
        expect(status.state, 'the subscription is not disabled').to.equal('running')
        expect(status.lastError).to.include({ code: 'RETRIABLE' })
        expect(rx.received).to.have.length(0)
        resolves = true
        await waitFor(() => rx.received.length === 3, { what: 'the three events after the name resolved' })
        expect(rx.received.map((r) => r.headers['webhook-id'])).to.deep.equal(ids)
        expect((await h.cp.deliveries.get(sub.id, ids[0]!))!.status).to.equal('delivered')
      },
    )
  })
})
