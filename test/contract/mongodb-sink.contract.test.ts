/**
 * The sink contract run for the MongoDB projection sink against the real MongoDB-compatible server,
 * reached through a wire-protocol proxy (test/helpers/wire-proxy.ts) that sees which writes the
 * server received:
 *  - 'ok': every message passes;
 *  - 'retriable': a write reaches the proxy and the connection is cut before the server answers
 *    (a network failure mid-request);
 *  - 'reject': the partner's collection has a unique index that the record's value collides with,
 *    so the real server refuses the write (E11000 on an index other than _id).
 */
import type { MongoClient } from 'mongodb'
import { createLogger } from '../../common/logger.ts'
import { createUrlGuard } from '../../common/url-guard.ts'
import { MongoClientPool, MongoProjectionSink, parseConnectionString } from '../../consumers/mongodb/index.ts'
import { mongoUri } from '../../config/index.ts'
import { dropDatabaseLater, testConfig, testMongo, uniqueName } from '../helpers/env.ts'
import { startWireProxy } from '../helpers/wire-proxy.ts'
import { contractRecord, runSinkContract, type PartnerMode } from './sink-contract.ts'

const silent = createLogger({ write: () => {} })
const EVENT_ID = /evt-contract-\d+/

runSinkContract('mongodb', async () => {
  const dbName = uniqueName('mcontract').slice(0, 40)
  dropDatabaseLater(dbName)
  const mongo: MongoClient = testMongo()
  await mongo.connect()
  const collection = mongo.db(dbName).collection<{ _id: string; n?: number }>('projection')
  const received: string[] = []
  let mode: PartnerMode = 'ok'
  // applying a mode may touch the server (the unique index of 'reject'); writes wait for it
  let applied: Promise<void> = Promise.resolve()
  const seed = parseConnectionString(mongoUri(testConfig())).hosts[0]!
  const proxy = await startWireProxy(seed, async (message) => {
    const id = EVENT_ID.exec(message.toString('latin1'))?.[0]
    if (id === undefined) return 'forward'
    await applied
    received.push(id)
    return mode === 'retriable' ? 'cut' : 'forward'
  })
  const pool = new MongoClientPool({
    guard: createUrlGuard({ allowlist: '127.0.0.1' }),
    logger: silent,
    settings: { serverSelectionTimeoutMs: 3000, connectTimeoutMs: 2000, socketTimeoutMs: 5000 },
  })
  const sinks: MongoProjectionSink[] = []
  return {
    async start(subscriptionId, onAttempt) {
      const sink = new MongoProjectionSink(pool)
      sinks.push(sink)
      await sink.start(
        {
          connectionString: `mongodb://${proxy.host}:${proxy.port}/?directConnection=true`,
          database: dbName,
          collection: 'projection',
        },
        { subscriptionId, logger: silent, onAttempt },
      )
      return {
        sink,
        partner: {
          receivedIds: () => [...received],
          setMode: (m) => {
            mode = m
            applied = applied.then(async () => {
              if (m === 'reject') {
                await collection.createIndex({ n: 1 }, { unique: true })
                // every contract record's value is { key, n: offset }: these hold the n values first
                await collection.insertMany(Array.from({ length: 10 }, (_, n) => ({ _id: `blocker-${n}`, n })))
              } else {
                await collection.deleteMany({ _id: { $regex: '^blocker-' } })
              }
            })
          },
        },
      }
    },
    // a value that is not a record: a projection has no fields to store (DataError before any write)
    poisonRecord: (offset) => ({ ...contractRecord(offset), value: 'not a record' }),
    async close() {
      await Promise.allSettled(sinks.map((s) => s.stop()))
      await pool.close()
      await proxy.close()
      await mongo.close()
    },
  }
})
