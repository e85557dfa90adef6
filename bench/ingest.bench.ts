/**
 * Events/s accepted by POST /v1/events/inventory.level.changed (batches of 500, Avro, acks=all,
 * 202 after the ack) beside raw kafkajs producing the same events pre-encoded, in the same batch
 * sizes and with the same number of concurrent senders, in the same run and on the same broker.
 */
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import express from 'express'
import { Partitioners } from 'kafkajs'
import { createLogger } from '../common/logger.ts'
import { contractSchema } from '../schemas/contracts.ts'
import { keySubject, valueSubject } from '../schemas/topics.ts'
import { envelope, toHeaders } from '../schemas/headers.ts'
import { createHttpIngest } from '../producers/http-ingest/index.ts'
import { inventoryEvent } from './serde.bench.ts'
import { benchEnv } from './sources-common.ts'
import { figure, type Benchmark, type Figure } from './types.ts'

const BATCH = 500
const SENDERS = 4

export const benchmark: Benchmark = {
  name: 'ingest',
  description: `POST /v1/events (batches of ${BATCH}, ${SENDERS} concurrent clients, Avro, acks=all) vs raw kafkajs sending the pre-encoded events, events/s`,
  async run(ctx): Promise<Figure[]> {
    const env = await benchEnv('ingest')
    try {
      const events = Array.from({ length: BATCH }, (_, i) => ({ ...inventoryEvent, sku: `SKU-${i % 97}`, locationId: `LOC-${i % 7}`, sequence: i }))
      const body = JSON.stringify(events)

      // Platform
      const ingest = createHttpIngest({ kafka: env.kafka, serde: env.serde, logger: createLogger({ level: 'error' }), authenticate: async () => ({ organizationId: 'bench' }), topics: [env.topic], maxEvents: BATCH })
      await ingest.start()
      const app = express()
      app.use(ingest.router)
      const server: Server = await new Promise((resolve) => {
        const s = app.listen(0, '127.0.0.1', () => resolve(s))
      })
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/events/inventory.level.changed`
      const postOnce = async () => {
        const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
        await res.arrayBuffer()
        if (res.status !== 202) throw new Error(`ingest answered ${res.status}`)
      }
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
        return n / ((Date.now() - t0) / 1000)
      }
      ctx.progress('platform: warm-up')
      await timed(postOnce, Math.min(1000, ctx.durationMs / 4))
      ctx.progress('platform: measuring')
      const platform = await timed(postOnce, ctx.durationMs)
      await ingest.stop()
      server.closeAllConnections()
      await new Promise((r) => server.close(r))

      // Baseline: raw kafkajs, the same producer settings, the same events already encoded.
      const keyId = await env.serde.register(keySubject(env.topic.name), contractSchema('inventory-level-key'))
      const valueId = await env.serde.register(valueSubject(env.topic.name), contractSchema('inventory-level'))
      const messages = events.map((e) => ({ key: env.serde.encodeSync(keyId, { sku: e.sku, locationId: e.locationId }), value: env.serde.encodeSync(valueId, e) }))
      const producer = env.kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner })
      await producer.connect()
      const sendOnce = async () => {
        await producer.send({ topic: env.topic.name, acks: -1, messages })
      }
      ctx.progress('raw kafkajs: warm-up')
      await timed(sendOnce, Math.min(1000, ctx.durationMs / 4))
      ctx.progress('raw kafkajs: measuring')
      const raw = await timed(sendOnce, ctx.durationMs)
      // The same, with the envelope headers every platform event carries, built beforehand.
      const withHeaders = events.map((e, i) => ({ ...messages[i]!, headers: toHeaders(envelope({ type: 'inventory.level.changed', source: '/bench', schemaSubject: valueSubject(env.topic.name), schemaVersion: 1 })) }))
      const sendHeaders = async () => {
        await producer.send({ topic: env.topic.name, acks: -1, messages: withHeaders })
      }
      ctx.progress('raw kafkajs with envelope headers: measuring')
      const rawHeaders = await timed(sendHeaders, ctx.durationMs)
      await producer.disconnect()
      return [figure('ingest.http.events', platform, 'events/s', raw, 0.8), figure('ingest.http.vs-raw+headers', platform, 'events/s', rawHeaders, 0.8)]
    } finally {
      await env.close()
    }
  },
}
