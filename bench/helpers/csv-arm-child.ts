/**
 * Child process of the csv benchmark: one arm, alone in its process, so that both arms start alike
 * (a fresh process each) and the platform's peak RSS is the csv-drop source's own (the source, its
 * runner, kafkajs, the Avro serde), not the benchmark's, which writes the file and serves the
 * registry. csv.bench.ts bundles this file as the platform is bundled (cli/build.mjs) and runs it with
 * plain node, without a TypeScript loader, as `npm start` runs the platform.
 *
 * argv: arm ('platform' | 'raw'), registry URL, topic, drop folder, csv-drop settings as JSON.
 *  - platform: one source and runner watch the drop folder for the whole run (started by the first
 *    message, so the warm-up file also connects the producer); each message { file, name } moves
 *    `file` into the folder as `name`, waits until the source finished it (every row acked and
 *    committed, the file moved to processed/), and answers { sec, peakMb };
 *  - raw: each message { rows, headers } encodes the file's rows batch by batch (Avro key and value,
 *    and when `headers` the envelope and position headers the source puts on each row) and produces
 *    each batch with raw kafkajs, timing only the sends; answers { sec }.
 * Errors are answered as { error }.
 */
import fs from 'node:fs'
import path from 'node:path'
import { Partitioners, type Message } from 'kafkajs'
import { createKafka } from '../../common/kafka/index.ts'
import { createLogger } from '../../common/logger.ts'
import { loadConfig } from '../../config/index.ts'
import { POSITION_HEADER, positionHeader } from '../../connectors/source/recovery.ts'
import { SourceRunner } from '../../connectors/source/runner.ts'
import { CsvDropSource, parseCsvDropConfig } from '../../producers/csv-drop/index.ts'
import { contractSchema } from '../../schemas/contracts.ts'
import { envelopeHeaders, newTraceparent, uuidv7 } from '../../schemas/headers.ts'
import { AvroSerde, RegistryClient } from '../../schemas/serde/index.ts'
import { keySubject, TOPICS, valueSubject, type TopicSpec } from '../../schemas/topics.ts'

const [arm, registryUrl, topicName, drop, settingsJson] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
]
const topic: TopicSpec = { ...TOPICS.inventoryLevels, name: topicName }
// Confined as the platform runs it (the drop folder's parent standing for the publisher's drop folder): real paths
// checked on every scan.
const config = parseCsvDropConfig(JSON.parse(settingsJson), path.dirname(drop))
const kafka = createKafka(loadConfig(), undefined, `bench-csv-${arm}`)
const serde = new AvroSerde(new RegistryClient({ url: registryUrl }))
const logger = createLogger({ level: 'error' })

/**
 * The source runs for the whole benchmark, watching its folder, as it does in the platform: each file dropped is timed
 * from its arrival to its last row acked.
 */
let running: { source: CsvDropSource; runner: SourceRunner } | undefined

async function platform(file: string, name: string): Promise<{ sec: number; peakMb: number }> {
  if (!running) {
    const source = new CsvDropSource([topic])
    const runner = new SourceRunner(source, config, {
      name: 'bench-csv',
      kafka,
      serde,
      topics: [topic],
      logger,
      idleMs: 5,
      maxBatch: config.batchRows,
    })
    await runner.start()
    running = { source, runner }
  }
  const { source } = running
  let peak = process.memoryUsage.rss()
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 20)
  try {
    const t0 = Date.now()
    fs.renameSync(file, path.join(drop, name))
    while (!source.finished.includes(name)) await new Promise((r) => setTimeout(r, 5))
    const sec = (Date.now() - t0) / 1000
    peak = Math.max(peak, process.memoryUsage.rss())
    return { sec, peakMb: peak / 1024 / 1024 }
  } finally {
    clearInterval(timer)
  }
}

const raw = await (async () => {
  if (arm !== 'raw') return undefined
  const keyId = await serde.register(keySubject(topic.name), contractSchema('inventory-level-key'))
  const valueId = await serde.register(valueSubject(topic.name), contractSchema('inventory-level'))
  const names = new SourceRunner(new CsvDropSource([topic]), config, {
    name: 'bench-csv',
    kafka,
    serde,
    topics: [topic],
    logger,
  })
  const ids = await names.topicIds(topic.name)
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner,
  })
  await producer.connect()
  return async (rows: number, withHeaders: boolean): Promise<{ sec: number }> => {
    let ms = 0
    const occurredAt = new Date()
    for (let start = 1; start <= rows; start += config.batchRows) {
      const messages: Message[] = []
      const traceparent = newTraceparent()
      const end = Math.min(start + config.batchRows, rows + 1)
      const tag = `${uuidv7()} ${end - start}` // the runner's batch tag (connectors/source/recovery.ts)
      for (let i = start; i < end; i++) {
        const sku = `SKU-${i % 5000}`
        const locationId = `DC-${i % 7}`
        const value = {
          manufacturerId: 'acme',
          sku,
          gtin: null,
          locationId,
          locationType: 'WAREHOUSE',
          unitOfMeasure: 'EA',
          onHand: i % 1000,
          reserved: i % 10,
          available: (i % 1000) - (i % 10),
          incoming: [],
          safetyStock: null,
          sequence: i,
          occurredAt: 0,
        }
        const message = {
          key: serde.encodeSync(keyId, { manufacturerId: 'acme', sku, locationId }),
          value: serde.encodeSync(valueId, value),
        }
        if (!withHeaders) messages.push(message)
        else {
          const headers = envelopeHeaders(
            uuidv7(),
            'inventory.level.changed',
            names.source,
            occurredAt,
            ids.subject,
            ids.version,
            traceparent,
          )
          headers[POSITION_HEADER] = positionHeader(
            { file: 'stock.csv', fileId: '1234567-12345678-1732000000000', byte: i * 40, line: i + 1, rejects: 0 },
            tag,
          )
          messages.push({ ...message, headers })
        }
      }
      const t0 = process.hrtime.bigint()
      await producer.send({ topic: topic.name, acks: -1, messages })
      ms += Number(process.hrtime.bigint() - t0) / 1e6
    }
    return { sec: ms / 1000 }
  }
})()

process.on('message', (msg: { file: string; name: string } | { rows: number; headers: boolean }) => {
  const run = 'rows' in msg ? raw!(msg.rows, msg.headers) : platform(msg.file, msg.name)
  run.then(
    (r) => process.send?.(r),
    (err: unknown) => process.send?.({ error: err instanceof Error ? (err.stack ?? err.message) : String(err) }),
  )
})
process.on('disconnect', () => {
  void (running?.runner.stop() ?? Promise.resolve()).finally(() => process.exit(0))
})
process.send?.({ ready: true, rssMb: process.memoryUsage.rss() / 1024 / 1024 })
