/**
 * The MongoDB projection sink against the real MongoDB-compatible server (FerretDB v1, or
 * MONGODB_URI): upserts, the stale-version guard, tombstones, refusals, the shared client pool.
 */
import { expect } from 'chai'
import type { MongoClient } from 'mongodb'
import { ConfigError, DataError, RetriableError, SyndicationError, UrlRefusedError } from '../../common/errors.ts'
import { createLogger } from '../../common/logger.ts'
import { createUrlGuard } from '../../common/url-guard.ts'
import type { AttemptReport, SinkRecord } from '../../connectors/sink/types.ts'
import { MongoClientPool, MongoProjectionSink, type MongoSinkConfig } from '../../consumers/mongodb/index.ts'
import { mongoUri } from '../../config/index.ts'
import { dropDatabaseLater, testConfig, testMongo, uniqueName } from '../helpers/env.ts'

const silent = createLogger({ write: () => {} })
const TOPIC = 'inventory.levels'
const T0 = Date.parse('2025-03-01T12:00:00Z')

function rec(
  offset: number,
  key: string | null = 'SKU-1',
  value: unknown = { sku: key, onHand: offset },
  extra: Partial<SinkRecord> = {},
): SinkRecord {
  return {
    topic: TOPIC,
    partition: 0,
    offset: String(offset),
    key,
    value,
    headers: {},
    eventId: `evt-${offset}`,
    eventType: 'inventory.level.changed',
    timestamp: T0 + offset * 1000,
    ...extra,
  }
}

async function failure(p: Promise<unknown>): Promise<SyndicationError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err, 'expected a failure').to.be.instanceOf(SyndicationError)
  return err as SyndicationError
}

/** The server's URI with credentials inserted (for the auth test). */
function withCredentials(uri: string, user: string, password: string): string {
  return uri.replace(/^(mongodb(\+srv)?:\/\/)/, `$1${encodeURIComponent(user)}:${encodeURIComponent(password)}@`)
}

describe('MongoDB projection sink against the real MongoDB-compatible server', function () {
  this.timeout(30_000)
  const uri = mongoUri(testConfig())
  let pool: MongoClientPool
  let mongo: MongoClient
  let dbName: string
  const sinks: MongoProjectionSink[] = []

  const config = (over: Partial<MongoSinkConfig> = {}): MongoSinkConfig => ({
    connectionString: uri,
    database: dbName,
    collection: 'levels',
    ...over,
  })
  const start = async (over: Partial<MongoSinkConfig> = {}, reports: AttemptReport[] = [], p = pool) => {
    const sink = new MongoProjectionSink(p)
    sinks.push(sink)
    await sink.start(config(over), { subscriptionId: 'sub-mongo', logger: silent, onAttempt: (r) => reports.push(r) })
    return sink
  }
  const docs = () => mongo.db(dbName).collection('levels').find({}).sort({ _id: 1 }).toArray()

  before(async () => {
    mongo = testMongo()
    await mongo.connect()
  })
  after(async () => {
    await mongo.close()
  })
  beforeEach(() => {
    dbName = uniqueName('msink').slice(0, 40)
    dropDatabaseLater(dbName)
    pool = new MongoClientPool({
      guard: createUrlGuard({ allowlist: '127.0.0.1' }),
      logger: silent,
      settings: { serverSelectionTimeoutMs: 1500, connectTimeoutMs: 1000 },
    })
  })
  afterEach(async () => {
    await Promise.allSettled(sinks.splice(0).map((s) => s.stop()))
    await pool.close()
  })

  it(
    'upserts the latest state per key: _id is the key, the value fields, and ' +
      '_meta with the version (offset) and the event',
    async () => {
      const reports: AttemptReport[] = []
      const sink = await start({}, reports)
      await sink.put([rec(3), rec(4, 'SKU-2'), rec(7)])
      const all = await docs()
      expect(all.map((d) => [d._id, d.onHand])).to.deep.equal([
        ['SKU-1', 7],
        ['SKU-2', 4],
      ])
      const meta = all[0]!._meta
      expect(meta).to.include({
        version: 7,
        topic: TOPIC,
        partition: 0,
        eventId: 'evt-7',
        eventType: 'inventory.level.changed',
      })
      expect(meta.occurredAt.getTime()).to.equal(T0 + 7000)
      expect(reports.map((r) => [r.eventId, r.outcome, r.responseExcerpt])).to.deep.equal([
        ['evt-3', 'delivered', 'inserted'],
        ['evt-4', 'delivered', 'inserted'],
        ['evt-7', 'delivered', 'replaced'],
      ])
      expect(reports[0]!.target).to.match(/^mongodb:\/\/.+\/test-msink-.+\.levels$/)
    },
  )

  it('never lets an older version overwrite a newer one, and a redelivery of the same version is a no-op', async () => {
    const reports: AttemptReport[] = []
    const sink = await start({}, reports)
    await sink.put([rec(10, 'SKU-1', { sku: 'SKU-1', onHand: 10, note: 'newest' })])
    const before = await docs()
    await sink.put([
      rec(9, 'SKU-1', { sku: 'SKU-1', onHand: 9 }),
      rec(2),
      rec(10, 'SKU-1', { sku: 'SKU-1', onHand: -1 }),
    ])
    expect(await docs()).to.deep.equal(before)
    expect(reports.slice(1).map((r) => [r.outcome, r.responseExcerpt])).to.deep.equal(
      Array(3).fill(['delivered', 'stale: a newer version is stored; skipped']),
    )
  })

  it('replaces the whole state: a field the newer version no longer has disappears', async () => {
    const sink = await start()
    await sink.put([rec(1, 'K', { a: 1, b: 2 }), rec(2, 'K', { a: 3 })])
    const [d] = await docs()
    expect(d).to.include({ _id: 'K', a: 3 }).and.not.have.property('b')
  })

  it(
    'deletes the document on a tombstone (null value), guarded: an older ' + 'tombstone leaves a newer state alone',
    async () => {
      const reports: AttemptReport[] = []
      const sink = await start({}, reports)
      await sink.put([rec(1, 'A'), rec(2, 'B'), rec(5, 'B')])
      await sink.put([rec(3, 'A', null)])
      expect((await docs()).map((d) => d._id)).to.deep.equal(['B'])
      await sink.put([rec(4, 'B', null)]) // older than the stored version 5
      expect((await docs()).map((d) => [d._id, d.onHand])).to.deep.equal([['B', 5]])
      await sink.put([rec(3, 'A', null)]) // again: nothing left to delete
      expect(reports.slice(-3).map((r) => r.responseExcerpt)).to.deep.equal([
        'deleted',
        'tombstone: no older document to delete',
        'tombstone: no older document to delete',
      ])
    },
  )

  it('after a partition change, the event time decides between versions of different partitions', async () => {
    const sink = await start()
    await sink.put([rec(100, 'K', { v: 'p0' })])
    // partition 1, lower offset but later event: newer
    await sink.put([rec(5, 'K', { v: 'p1-later' }, { partition: 1, timestamp: T0 + 200_000 })])
    expect((await docs())[0]).to.include({ v: 'p1-later' })
    // partition 0 again, an event older than what is stored: skipped
    await sink.put([rec(101, 'K', { v: 'p0-older' }, { timestamp: T0 + 150_000 })])
    expect((await docs())[0]).to.include({ v: 'p1-later' })
  })

  it('overwrites a document it did not write (no _meta): the projection owns its collection', async () => {
    await mongo
      .db(dbName)
      .collection<{ _id: string; stale: boolean }>('levels')
      .insertOne({ _id: 'SKU-1', stale: true })
    const sink = await start()
    await sink.put([rec(1)])
    const [d] = await docs()
    expect(d).to.include({ _id: 'SKU-1', onHand: 1 }).and.not.have.property('stale')
  })

  it('dead-letters what the server refuses: a unique index of the partner\'s (DataError, not "stale")', async () => {
    const col = mongo.db(dbName).collection<{ _id: string; ref: string }>('levels')
    await col.createIndex({ ref: 1 }, { unique: true })
    await col.insertOne({ _id: 'other', ref: 'R1' })
    const reports: AttemptReport[] = []
    const sink = await start({}, reports)
    const err = await failure(sink.put([rec(1, 'SKU-1', { ref: 'R1' })]))
    expect(err).to.be.instanceOf(DataError)
    expect(err.message).to.contain('unique index')
    expect(reports.at(-1)).to.include({ outcome: 'failed', code: 'DATA_INVALID' })
    expect(await col.countDocuments({ _id: 'SKU-1' })).to.equal(0)
  })

  it(
    'dead-letters a document over the 16 MiB limit, a value that is not a record, ' +
      'a reserved field and a missing key',
    async () => {
      const sink = await start()
      const big = await failure(sink.put([rec(1, 'SKU-1', { blob: 'x'.repeat(17 * 1024 * 1024) })]))
      expect(big).to.be.instanceOf(DataError)
      expect(await failure(sink.put([rec(2, 'SKU-1', 'just a string')]))).to.be.instanceOf(DataError)
      expect(await failure(sink.put([rec(3, 'SKU-1', { _id: 'x' })]))).to.be.instanceOf(DataError)
      expect(await failure(sink.put([rec(4, null)]))).to.be.instanceOf(DataError)
      expect(await docs()).to.have.length(0)
    },
  )

  it(
    'refuses a bad connection string, database or collection with a ConfigError ' +
      'naming the field, never quoting the password',
    async () => {
      const password = `pw-${Math.random().toString(36).slice(2)}`
      const bad = [
        config({ connectionString: `mongodb://bob:${password}@` }),
        config({ connectionString: `mongodb://bob:${password}@127.0.0.1/?authMechanism=BOGUS` }),
        config({ connectionString: `http://bob:${password}@127.0.0.1/` }),
        config({ database: 'a/b' }),
        config({ collection: 'system.users' }),
      ]
      for (const c of bad) {
        const sink = new MongoProjectionSink(pool)
        const err = await failure(sink.start(c, { subscriptionId: 'sub-bad', logger: silent }))
        expect(err, err.message).to.be.instanceOf(ConfigError)
        expect(err.message).to.match(/sink\.(connectionString|database|collection)/)
        expect(JSON.stringify({ m: err.message, c: err.context })).to.not.contain(password)
      }
      expect(pool.clients).to.equal(0)
    },
  )

  it('reports refused credentials as a ConfigError without the password', async () => {
    const password = `pw-${Math.random().toString(36).slice(2)}`
    const sink = new MongoProjectionSink(pool)
    const err = await failure(
      sink.start(config({ connectionString: withCredentials(uri, 'nobody', password) }), {
        subscriptionId: 'sub-auth',
        logger: silent,
      }),
    )
    expect(err).to.be.instanceOf(ConfigError)
    expect(err.message).to.match(/credentials/)
    expect(
      JSON.stringify({ m: err.message, c: err.context, cause: String((err as Error).cause ?? '') }),
    ).to.not.contain(password)
    expect(pool.clients).to.equal(0)
  })

  it('treats an unreachable server as retriable, and the URL guard refuses hosts outside the allowlist', async () => {
    const sink = new MongoProjectionSink(pool)
    const down = await failure(
      sink.start(config({ connectionString: 'mongodb://127.0.0.1:1/' }), {
        subscriptionId: 'sub-down',
        logger: silent,
      }),
    )
    expect(down).to.be.instanceOf(RetriableError)
    const strict = new MongoClientPool({
      guard: createUrlGuard(),
      logger: silent,
      settings: { serverSelectionTimeoutMs: 1000 },
    })
    try {
      for (const cs of [uri, 'mongodb://10.1.2.3:27017/', 'mongodb://169.254.169.254/', 'mongodb://localhost:27017/']) {
        const err = await failure(
          new MongoProjectionSink(strict).start(config({ connectionString: cs }), {
            subscriptionId: 'sub-ssrf',
            logger: silent,
          }),
        )
        expect(err, cs).to.be.instanceOf(UrlRefusedError)
      }
      expect(strict.clients).to.equal(0)
    } finally {
      await strict.close()
    }
  })

  it(
    'shares one client per connection string among many subscriptions (bounded ' +
      'connections), closed when the last stops',
    async () => {
      const n = 200
      const many: MongoProjectionSink[] = []
      for (let i = 0; i < n; i++) many.push(await start({ collection: `c${i % 4}` }))
      expect(pool.clients).to.equal(1)
      expect(pool.users(uri)).to.equal(n)
      const secondUri = `${uri}${uri.includes('?') ? '&' : '?'}appName=second`
      const other = await start({ connectionString: secondUri })
      expect(pool.clients).to.equal(2)
      // every sink writes at once: the one pool opens at most maxPoolSize (10) connections
      const lease = await pool.acquire(uri)
      let connections = 0
      let closed = false
      lease.client.on('connectionCreated', () => connections++)
      lease.client.on('topologyClosed', () => (closed = true))
      await Promise.all(many.map((s, i) => s.put([rec(i + 1, `K${i}`)])))
      expect(connections).to.be.at.most(10)
      expect(await mongo.db(dbName).collection('c0').countDocuments()).to.equal(n / 4)
      await Promise.all(many.map((s) => s.stop()))
      expect(pool.users(uri)).to.equal(1) // the lease taken above
      expect(closed).to.equal(false)
      await lease.release()
      expect(pool.users(uri)).to.equal(0)
      expect(closed).to.equal(true)
      await other.stop()
      expect(pool.clients).to.equal(0)
    },
  )
})
