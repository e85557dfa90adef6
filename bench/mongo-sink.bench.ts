/**
 * Writes/s of the MongoDB projection sink (the guarded conditional replace, through the shared
 * client pool, with attempt reports) beside the raw driver's unguarded replaceOne upsert of the same
 * documents at the same concurrency, on the same server, in one run. A second phase measures a
 * replay (every write stale: the refused upsert plus the read that confirms it) beside the same raw
 * upsert. Bounded: a few seconds per phase, 8 writes in flight, 200 keys.
 */
import { randomUUID } from 'node:crypto'
import { MongoClient } from 'mongodb'
import { createLogger } from '../common/logger.ts'
import { createUrlGuard } from '../common/url-guard.ts'
import { loadConfig, mongoUri } from '../config/index.ts'
import type { SinkRecord } from '../connectors/sink/types.ts'
import { MongoClientPool, MongoProjectionSink } from '../consumers/mongodb/index.ts'
import { inventoryEvent } from './serde.bench.ts'
import { figure, type Benchmark } from './types.ts'

const KEYS = 200
const CONCURRENCY = 8

/** Runs `op(i)` with CONCURRENCY in flight for `ms`; returns ops/s. */
async function closedLoop(op: (i: number) => Promise<unknown>, ms: number): Promise<number> {
  let next = 0
  let done = 0
  const t0 = performance.now()
  const end = t0 + ms
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) {
        await op(next++)
        done++
      }
    }),
  )
  return done / ((performance.now() - t0) / 1000)
}

export const benchmark: Benchmark = {
  description:
    'MongoDB projection sink writes/s (guarded replace, and a stale replay) ' +
    'beside raw driver upserts, same server and concurrency',
  async run(ctx) {
    const config = loadConfig()
    const uri = mongoUri(config)
    const dbName = `bench-mongo-sink-${randomUUID().slice(0, 8)}`
    const raw = new MongoClient(uri, { serverSelectionTimeoutMS: 5000 })
    await raw.connect()
    const silent = createLogger({ write: () => {} })
    const pool = new MongoClientPool({
      guard: createUrlGuard({ allowlist: ['127.0.0.1', '::1', 'localhost', config.urlGuard.allowlist].join(',') }),
      logger: silent,
    })
    const sink = new MongoProjectionSink(pool)
    const phaseMs = Math.min(ctx.durationMs, 4000)
    try {
      await sink.start(
        { connectionString: uri, database: dbName, collection: 'sink' },
        { subscriptionId: 'bench', logger: silent, onAttempt: () => {} },
      )
      const rawCol = raw.db(dbName).collection<{ _id: string }>('raw')
      const record = (i: number, offset: number): SinkRecord => ({
        topic: 'inventory.levels',
        partition: 0,
        offset: String(offset),
        key: `K${i % KEYS}`,
        value: { ...inventoryEvent, sequence: offset },
        headers: {},
        eventId: `evt-${offset}`,
        eventType: 'inventory.level.changed',
        timestamp: Date.now(),
      })
      const rawWrite = (i: number) =>
        rawCol.replaceOne({ _id: `K${i % KEYS}` }, { ...inventoryEvent, sequence: i }, { upsert: true })
      // warm-up: every key exists in both collections (the sink's at a high version, for the replay)
      ctx.progress('warming up (one write per key)')
      for (let i = 0; i < KEYS; i++) {
        await rawWrite(i)
        await sink.put([record(i, 1_000_000_000 + i)])
      }
      const base = 2_000_000_000
      ctx.progress(`raw upserts for ${phaseMs} ms`)
      const rawRate = await closedLoop(rawWrite, phaseMs)
      ctx.progress(`sink upserts for ${phaseMs} ms`)
      // each offset is new and higher than the stored one: every write replaces
      const sinkRate = await closedLoop((i) => sink.put([record(i, base + i)]), phaseMs)
      ctx.progress(`sink replay (stale writes) for ${phaseMs} ms`)
      const staleRate = await closedLoop((i) => sink.put([record(i, i)]), phaseMs)
      return [
        figure('mongo-sink.upsert', Math.round(sinkRate), 'writes/s', Math.round(rawRate), null),
        figure('mongo-sink.replay-stale', Math.round(staleRate), 'writes/s', Math.round(rawRate), null),
      ]
    } finally {
      await sink.stop().catch(() => undefined)
      await pool.close()
      // dropped only after every write of this run finished (FerretDB v1 and late writes, see test/helpers/env.ts)
      await raw
        .db(dbName)
        .dropDatabase()
        .catch(() => undefined)
      await raw.close()
    }
  },
}
