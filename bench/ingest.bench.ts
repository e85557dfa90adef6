/**
 * Events/s accepted by POST /v1/events/inventory.level.changed (batches of 500, Avro, acks=all,
 * 202 after the ack; the clients in a child process) beside raw kafkajs producing the same messages pre-encoded (Avro
 * key and value
 * in the Confluent wire format and the same nine CloudEvents/traceparent headers the platform puts on
 * every event, all built before the clock starts), in the same batch sizes, with the same number of
 * concurrent senders, the same producer settings (idempotent, acks=all, no compression), in the
 * same run and on the same broker. The phases alternate (platform, raw, raw without headers, twice)
 * so that the load of a shared machine drifting during the run hits every arm alike. Raw kafkajs
 * without the headers is printed for reference: kafkajs spends about as much on nine headers as on
 * the rest of a record, so it bounds what any producer of these events can reach with kafkajs.
 */
import { fork } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import express from 'express'
import { Partitioners } from 'kafkajs'
import { createLogger } from '../common/logger.ts'
import { createHttpIngest } from '../producers/http-ingest/index.ts'
import { listenLocal } from '../test/helpers/http.ts'
import { inventoryEvent } from './serde.bench.ts'
import { benchEnv, inventoryEvents, inventoryRecords } from './sources-common.ts'
import { figure, type Benchmark, type Figure } from './types.ts'

const here = path.dirname(fileURLToPath(import.meta.url))
const BATCH = 500
const SENDERS = 4

export const benchmark: Benchmark = {
  description:
    `POST /v1/events (batches of ${BATCH}, ${SENDERS} concurrent clients in a ` +
    `child process, Avro, acks=all) vs raw kafkajs sending the same messages ` +
    `pre-encoded (envelope headers included), events/s`,
  async run(ctx): Promise<Figure[]> {
    const env = await benchEnv('ingest')
    try {
      const events = inventoryEvents(BATCH)
      const body = JSON.stringify(events)

      const timed = async (op: () => Promise<void>, ms: number) => {
        let n = 0
        const t0 = Date.now()
        await Promise.all(
          Array.from({ length: SENDERS }, async () => {
            while (Date.now() - t0 < ms) {
              await op()
              n += BATCH
            }
          }),
        )
        return { n, sec: (Date.now() - t0) / 1000 }
      }

      // Platform (without the per-key rate limit, INGEST_RATE_LIMIT_EVENTS_PER_SECOND: the figure is the pipeline's
      // capacity)
      const ingest = createHttpIngest({
        kafka: env.kafka,
        serde: env.serde,
        logger: createLogger({ level: 'error' }),
        authenticate: async () => ({ organizationId: inventoryEvent.manufacturerId }),
        topics: [env.topic],
        maxEvents: BATCH,
      }) // the publisher of the events (ingestion refuses another manufacturer's)
      await ingest.start()
      const app = express()
      app.use(ingest.router)
      const server = await listenLocal(app)
      const url = `${server.url}/v1/events/inventory.level.changed`
      // The clients run in a child process (publishers are other machines), like the receivers of
      // the fanout benchmark: the measured process does the ingest only.
      const clients = fork(path.join(here, 'helpers', 'ingest-clients-child.ts'), [], {
        execArgv: ['--import', 'tsx'],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      })
      const post = (ms: number) =>
        new Promise<{ n: number; sec: number }>((resolve, reject) => {
          clients.once('message', (m: { n: number; sec: number; error?: string }) =>
            m.error ? reject(new Error(m.error)) : resolve(m),
          )
          clients.send({ url, body, senders: SENDERS, ms, batch: BATCH })
        })

      // Baseline: raw kafkajs, the same producer settings, the same messages already encoded: Avro
      // key and value, and the envelope headers of each event (own id, time, one traceparent per batch,
      // the publisher the ingest stamps on every event).
      const { plain: messages, withHeaders } = await inventoryRecords(env, events, ingest.runner.source)
      const producer = env.kafka.producer({
        idempotent: true,
        maxInFlightRequests: 1,
        createPartitioner: Partitioners.DefaultPartitioner,
      })
      await producer.connect()
      const sendHeaders = async () => {
        await producer.send({ topic: env.topic.name, acks: -1, messages: withHeaders })
      }
      const sendPlain = async () => {
        await producer.send({ topic: env.topic.name, acks: -1, messages })
      }

      const warm = Math.min(1000, ctx.durationMs / 4)
      ctx.progress('warm-up: platform, raw kafkajs')
      await post(warm)
      await timed(sendHeaders, warm)
      await timed(sendPlain, warm)
      const arms = { platform: { n: 0, sec: 0 }, raw: { n: 0, sec: 0 }, plain: { n: 0, sec: 0 } }
      const add = (a: { n: number; sec: number }, r: { n: number; sec: number }) => ((a.n += r.n), (a.sec += r.sec))
      for (let round = 1; round <= 2; round++) {
        ctx.progress(`round ${round}: platform`)
        add(arms.platform, await post(ctx.durationMs / 2))
        ctx.progress(`round ${round}: raw kafkajs, same messages and headers`)
        add(arms.raw, await timed(sendHeaders, ctx.durationMs / 2))
        ctx.progress(`round ${round}: raw kafkajs without headers (reference)`)
        add(arms.plain, await timed(sendPlain, ctx.durationMs / 2))
      }
      clients.disconnect()
      await producer.disconnect()
      await ingest.stop()
      await server.close()
      const platform = arms.platform.n / arms.platform.sec
      const raw = arms.raw.n / arms.raw.sec
      const rawNoHeaders = arms.plain.n / arms.plain.sec
      return [
        figure('ingest.http.events', platform, 'events/s', raw, 0.8),
        figure('ingest.http.vs-raw-no-headers', platform, 'events/s', rawNoHeaders, null),
      ]
    } finally {
      await env.close()
    }
  },
}
