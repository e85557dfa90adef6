/**
 * Rows/s from a stock file into Kafka through the CSV drop source (streaming parse, header mapping,
 * Avro, acks=all, resume point after each batch) with the peak RSS of the process, beside raw kafkajs
 * producing the same messages pre-encoded (Avro key and value, the nine envelope headers and the
 * position header the source puts on every row, all built before the clock starts) in the same batch
 * size, one request at a time, with the same producer settings (idempotent, acks=all, no
 * compression), in the same run, the arms alternating over two runs of the file. The raw figure without
 * headers is printed for reference. Rows:
 * config bench.csvRows (BENCH_CSV_ROWS; 100000 by default, the full run is 1000000).
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Partitioners } from 'kafkajs'
import { createLogger } from '../common/logger.ts'
import { SourceRunner } from '../connectors/source/runner.ts'
import { CsvDropSource, parseCsvDropConfig } from '../producers/csv-drop/index.ts'
import { contractSchema } from '../schemas/contracts.ts'
import { envelopeHeaders, newTraceparent, uuidv7 } from '../schemas/headers.ts'
import { keySubject, valueSubject } from '../schemas/topics.ts'
import { POSITION_HEADER } from '../connectors/source/recovery.ts'
import { benchEnv, withPeakRss } from './sources-common.ts'
import { figure, type Benchmark, type Figure } from './types.ts'

/** Rows per poll and per produce request, in both arms (the csv-drop default and the runner's maxBatch). */
const BATCH = 2000

export const benchmark: Benchmark = {
  name: 'csv',
  description: 'CSV stock file → Kafka through the csv-drop source vs raw kafkajs with the same messages pre-encoded (headers included, same batch size), rows/s and peak RSS',
  async run(ctx): Promise<Figure[]> {
    const env = await benchEnv('csv')
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-csv-'))
    try {
      const rows = env.config.bench.csvRows
      const fileRows = rows
      const warmRows = Math.min(20_000, rows)
      const drop = path.join(dir, 'drop')
      fs.mkdirSync(drop)
      const template = path.join(dir, 'stock.template.csv')
      ctx.progress(`writing ${rows} rows`)
      const out = fs.createWriteStream(template)
      const warmFile = path.join(dir, 'stock.warm-up.csv')
      const warm: string[] = ['Item,Warehouse,OnHand,Reserved,Available,Seq\r\n']
      out.write('Item,Warehouse,OnHand,Reserved,Available,Seq\r\n')
      for (let i = 1; i <= rows; i++) {
        const line = `SKU-${i % 5000},DC-${i % 7},${i % 1000},${i % 10},${(i % 1000) - (i % 10)},${i}\r\n`
        if (i <= warmRows) warm.push(line)
        if (!out.write(line)) await new Promise<void>((r) => out.once('drain', () => r()))
      }
      await new Promise<void>((r) => out.end(() => r()))
      fs.writeFileSync(warmFile, warm.join(''))
      const size = fs.statSync(template).size
      ctx.progress(`file: ${(size / 1024 / 1024).toFixed(1)} MB`)

      const config = parseCsvDropConfig({
        dir: drop,
        topic: env.topic.name,
        settleMs: 0,
        scanIntervalMs: 10,
        batchRows: BATCH,
        columns: { sku: 'Item', locationId: 'Warehouse', onHand: 'OnHand', reserved: 'Reserved', available: 'Available', sequence: 'Seq' },
        constants: { manufacturerId: 'acme', unitOfMeasure: 'EA' },
      })
      /** One platform run: the file dropped whole (renamed in), a fresh source and runner, until the file is done. */
      const platformRun = async (round: number | string, from = template) => {
        const name = `stock-${round}.csv`
        fs.copyFileSync(from, path.join(dir, name))
        const source = new CsvDropSource([env.topic])
        const runner = new SourceRunner(source, config, { name: 'bench-csv', kafka: env.kafka, serde: env.serde, topics: [env.topic], logger: createLogger({ level: 'error' }), idleMs: 5, maxBatch: BATCH })
        global.gc?.()
        return withPeakRss(async () => {
          const t0 = Date.now()
          fs.renameSync(path.join(dir, name), path.join(drop, name))
          await runner.start()
          while (!source.finished.includes(name)) await new Promise((r) => setTimeout(r, 20))
          const sec = (Date.now() - t0) / 1000
          await runner.stop()
          return sec
        })
      }

      // Baseline: the same rows, encoded beforehand in chunks of one batch (with the same headers, or
      // none for the reference figure), produced by raw kafkajs; only the sends are timed.
      const keyId = await env.serde.register(keySubject(env.topic.name), contractSchema('inventory-level-key'))
      const valueId = await env.serde.register(valueSubject(env.topic.name), contractSchema('inventory-level'))
      const idsRunner = new SourceRunner(new CsvDropSource([env.topic]), config, { name: 'bench-csv', kafka: env.kafka, serde: env.serde, topics: [env.topic], logger: createLogger({ level: 'error' }) })
      const ids = await idsRunner.topicIds(env.topic.name)
      const producer = env.kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner })
      await producer.connect()
      const rawRun = async (withHeaders: boolean, rows = fileRows) => {
        let ms = 0
        const occurredAt = new Date()
        for (let start = 1; start <= rows; start += BATCH) {
          const messages = []
          const traceparent = newTraceparent()
          for (let i = start; i < Math.min(start + BATCH, rows + 1); i++) {
            const sku = `SKU-${i % 5000}`
            const locationId = `DC-${i % 7}`
            const value = { manufacturerId: 'acme', sku, gtin: null, locationId, locationType: 'WAREHOUSE', unitOfMeasure: 'EA', onHand: i % 1000, reserved: i % 10, available: (i % 1000) - (i % 10), incoming: [], safetyStock: null, sequence: i, occurredAt: 0 }
            const message = { key: env.serde.encodeSync(keyId, { sku, locationId }), value: env.serde.encodeSync(valueId, value) }
            if (!withHeaders) messages.push(message)
            else {
              const headers = envelopeHeaders(uuidv7(), 'inventory.level.changed', idsRunner.source, occurredAt, ids.subject, ids.version, traceparent)
              headers[POSITION_HEADER] = JSON.stringify({ file: 'stock.csv', fileId: '1234567-12345678-1732000000000', byte: i * 40, line: i + 1, rejects: 0 })
              messages.push({ ...message, headers })
            }
          }
          const t0 = process.hrtime.bigint()
          await producer.send({ topic: env.topic.name, acks: -1, messages })
          ms += Number(process.hrtime.bigint() - t0) / 1e6
        }
        return ms
      }
      // The arms alternate (platform, raw, platform, raw) so that load drift on a shared machine hits both.
      // Warm-up, not measured: a first pass through each arm compiles its code paths (the first
      // measured round would otherwise carry the platform's JIT warm-up, and the raw arm runs second).
      ctx.progress(`warm-up: ${warmRows} rows through each arm`)
      await platformRun('warm-up', warmFile)
      await rawRun(true, warmRows)
      let platformSec = 0
      let rawMs = 0
      let peakMb = 0
      for (let round = 1; round <= 2; round++) {
        ctx.progress(`round ${round}: platform, csv-drop source (RSS before: ${Math.round(process.memoryUsage().rss / 1048576)} MB)`)
        const p = await platformRun(round)
        ctx.progress(`round ${round}: platform peak RSS ${Math.round(p.peakMb)} MB, ${Math.round(rows / p.result)} rows/s`)
        platformSec += p.result
        peakMb = Math.max(peakMb, p.peakMb)
        ctx.progress(`round ${round}: raw kafkajs, pre-encoded rows`)
        rawMs += await rawRun(true)
      }
      ctx.progress('raw kafkajs: pre-encoded rows without headers (reference)')
      const plainMs = await rawRun(false)
      await producer.disconnect()
      const platform = (2 * rows) / platformSec
      const raw = (2 * rows) / (rawMs / 1000)
      return [figure('csv.rows', platform, 'rows/s', raw, 0.8), figure('csv.vs-raw-no-headers', platform, 'rows/s', rows / (plainMs / 1000), null), figure('csv.peak-rss', peakMb, 'MB', null, 300, true)]
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
      await env.close()
    }
  },
}
