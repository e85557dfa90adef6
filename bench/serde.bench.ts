/**
 * Encode and decode throughput of the platform serde (Confluent wire format, cached ids and types)
 * beside raw avsc toBuffer/fromBuffer and JSON.stringify/parse, on an inventory event, in one run.
 * The registry is the built-in one over an in-memory log (no Kafka needed); after the first lookup
 * the serde does no I/O, so the registry is not on the measured path.
 */
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import avro from 'avsc'
import { createLogger } from '../common/logger.ts'
import { contractSchema } from '../schemas/contracts.ts'
import { createRegistryApp, MemorySchemaLog, SchemaRegistryService } from '../schemas/registry/index.ts'
import { AvroSerde, RegistryClient } from '../schemas/serde/index.ts'
import { figure, type Benchmark, type Figure } from './types.ts'

export const inventoryEvent = {
  manufacturerId: 'acme-industrial',
  sku: 'HX-4410-B',
  gtin: '04012345678901',
  locationId: 'DE-HAM-DC1',
  locationType: 'DISTRIBUTION_CENTER',
  unitOfMeasure: 'EA',
  onHand: 12_480,
  reserved: 1_200,
  available: 10_980,
  incoming: [
    { quantity: 5_000, expectedDate: 20_120, reference: 'PO-2024-00871' },
    { quantity: 2_500, expectedDate: 20_134, reference: null },
  ],
  safetyStock: 300,
  sequence: 1_732_000_000_123_456,
  occurredAt: 1_732_000_000_123,
}

/** Ops per second of `op`, run in batches until `ms` elapsed. */
function rate(op: () => unknown, ms: number): number {
  const batch = 2_000
  let n = 0
  const t0 = process.hrtime.bigint()
  const end = t0 + BigInt(ms) * 1_000_000n
  let now = t0
  while (now < end) {
    for (let i = 0; i < batch; i++) op()
    n += batch
    now = process.hrtime.bigint()
  }
  return n / (Number(now - t0) / 1e9)
}

/** Alternates the contenders in rounds (so drift hits them alike) and keeps each one's best round. */
function compare(contenders: Record<string, () => unknown>, totalMs: number): Record<string, number> {
  const rounds = 5
  const per = Math.max(50, Math.floor(totalMs / rounds / Object.keys(contenders).length))
  const best: Record<string, number> = {}
  for (const op of Object.values(contenders)) rate(op, Math.min(300, per)) // warm-up
  for (let r = 0; r < rounds; r++) {
    for (const [name, op] of Object.entries(contenders)) best[name] = Math.max(best[name] ?? 0, rate(op, per))
  }
  return best
}

export const benchmark: Benchmark = {
  name: 'serde',
  description: 'platform serde (Confluent wire format) vs raw avsc toBuffer/fromBuffer and JSON, inventory event, ops/s',
  async run(ctx): Promise<Figure[]> {
    const logger = createLogger({ level: 'error' })
    const app = createRegistryApp(new SchemaRegistryService(new MemorySchemaLog()), logger)
    const server: Server = await new Promise((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s))
    })
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
      const serde = new AvroSerde(new RegistryClient({ url }))
      const schema = contractSchema('inventory-level')
      const id = await serde.register('inventory.levels-value', schema)
      const type = avro.Type.forSchema(JSON.parse(schema))
      const wire = serde.encodeSync(id, inventoryEvent)
      const body = type.toBuffer(inventoryEvent)
      const json = JSON.stringify(inventoryEvent)
      ctx.progress(`event: ${body.length} bytes Avro (+5 wire header), ${json.length} bytes JSON`)

      ctx.progress('encode ...')
      const enc = compare(
        {
          serde: () => serde.encodeSync(id, inventoryEvent),
          avsc: () => type.toBuffer(inventoryEvent),
          json: () => Buffer.from(JSON.stringify(inventoryEvent)),
        },
        ctx.durationMs,
      )
      ctx.progress('decode ...')
      const dec = compare(
        {
          serde: () => serde.decodeSync(wire),
          avsc: () => type.fromBuffer(body),
          json: () => JSON.parse(json),
        },
        ctx.durationMs,
      )
      return [
        figure('serde.encode', enc.serde!, 'ops/s', enc.avsc!, 0.9),
        figure('serde.decode', dec.serde!, 'ops/s', dec.avsc!, 0.9),
        figure('json.encode (for scale)', enc.json!, 'ops/s', enc.avsc!, null),
        figure('json.decode (for scale)', dec.json!, 'ops/s', dec.avsc!, null),
      ]
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  },
}
