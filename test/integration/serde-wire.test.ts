/**
 * A message the platform produces to Kafka decodes with a reader written here from the specs alone:
 * Confluent's wire format (magic byte 0, 4-byte big-endian schema id, Avro body), the schema fetched
 * by id over plain HTTP, and the Avro binary encoding (Avro 1.11 specification, "Binary Encoding")
 * decoded by hand: none of our code and no avsc on the reading side.
 */
import { createTopicsReady } from '../../common/kafka/admin.ts'
import { expect } from 'chai'
import { Partitioners } from 'kafkajs'
import { AvroSerde, RegistryClient, decimalToBytes, bytesToDecimal } from '../../schemas/serde/index.ts'
import { TOPICS, keySubject, valueSubject, registerTopicSchemas } from '../../schemas/topics.ts'
import { envelope, fromHeaders, toHeaders } from '../../schemas/headers.ts'
import { deleteTopics, startTestRegistry } from '../helpers/registry.ts'
import { testKafka, uniqueName } from '../helpers/env.ts'
import type { RegistryServer } from '../../schemas/registry/index.ts'

// ---- a spec reader ------------------------------------------------------------------------------
type Json = any
class SpecReader {
  pos = 0
  constructor(
    private readonly buf: Buffer,
    private readonly named: Map<string, Json> = new Map(),
  ) {}
  long(): number {
    // Variable-length zig-zag.
    let n = 0n
    let shift = 0n
    for (;;) {
      const b = this.buf[this.pos++]!
      n |= BigInt(b & 0x7f) << shift
      if ((b & 0x80) === 0) break
      shift += 7n
    }
    return Number((n >> 1n) ^ -(n & 1n))
  }
  bytes(): Buffer {
    const len = this.long()
    const out = this.buf.subarray(this.pos, this.pos + len)
    this.pos += len
    return out
  }
  read(schema: Json, ns = ''): unknown {
    if (typeof schema === 'string') {
      switch (schema) {
        case 'null':
          return null
        case 'boolean':
          return this.buf[this.pos++] === 1
        case 'int':
        case 'long':
          return this.long()
        case 'double': {
          const v = this.buf.readDoubleLE(this.pos)
          this.pos += 8
          return v
        }
        case 'bytes':
          return this.bytes()
        case 'string':
          return this.bytes().toString('utf8')
        default: {
          const full = schema.includes('.') ? schema : `${ns}.${schema}`
          return this.read(this.named.get(full) ?? this.named.get(schema), ns)
        }
      }
    }
    if (Array.isArray(schema)) return this.read(schema[this.long()], ns)
    const space = schema.namespace ?? ns
    if (schema.name) this.named.set(schema.name.includes('.') ? schema.name : `${space}.${schema.name}`, schema)
    switch (schema.type) {
      case 'record': {
        const out: Record<string, unknown> = {}
        for (const f of schema.fields) out[f.name] = this.read(f.type, space)
        return out
      }
      case 'enum':
        return schema.symbols[this.long()]
      case 'array': {
        const out: unknown[] = []
        for (let n = this.long(); n !== 0; n = this.long()) {
          if (n < 0) {
            n = -n
            this.long() // block size in bytes
          }
          for (let i = 0; i < n; i++) out.push(this.read(schema.items, space))
        }
        return out
      }
      default:
        return this.read(schema.type, space)
    }
  }
}

async function specDecode(registryUrl: string, message: Buffer): Promise<{ id: number; value: unknown }> {
  expect(message[0], 'magic byte').to.equal(0)
  const id = message.readUInt32BE(1)
  const res = await fetch(`${registryUrl}/schemas/ids/${id}`)
  expect(res.status).to.equal(200)
  const { schema } = (await res.json()) as { schema: string }
  const reader = new SpecReader(message.subarray(5))
  const value = reader.read(JSON.parse(schema))
  expect(reader.pos, 'whole body consumed').to.equal(message.length - 5)
  return { id, value }
}

// ---- the test -------------------------------------------------------------------------------------

describe('serde: Confluent wire format on Kafka', function () {
  let reg: RegistryServer & { topic: string }
  const topic = uniqueName('inventory')
  before(async () => {
    reg = await startTestRegistry()
    const admin = testKafka().admin()
    await admin.connect()
    await createTopicsReady(admin, [{ topic, numPartitions: 1 }])
    await admin.disconnect()
  })
  after(async () => {
    await reg?.close()
    await deleteTopics(reg.topic, topic)
  })

  it('a produced inventory event decodes with a reader written from the spec', async () => {
    const serde = new AvroSerde(new RegistryClient({ url: reg.url }))
    const spec = { ...TOPICS.inventoryLevels, name: topic }
    const ids = (await registerTopicSchemas(serde, [spec]))[topic]!
    const value = {
      manufacturerId: 'acme',
      sku: 'SKU-1',
      gtin: '04012345678901',
      locationId: 'DE-HAM-1',
      locationType: 'DISTRIBUTION_CENTER',
      unitOfMeasure: 'EA',
      onHand: 1200,
      reserved: 200,
      available: -3,
      incoming: [{ quantity: 5000, expectedDate: 20_100, reference: 'PO-77' }],
      safetyStock: null,
      sequence: 2 ** 40,
      occurredAt: 1_732_000_000_123,
    }
    const key = serde.encodeSync(ids.keyId, { manufacturerId: 'acme', sku: 'SKU-1', locationId: 'DE-HAM-1' })
    const env = envelope({
      type: 'inventory.level.changed',
      source: '/manufacturers/acme/erp',
      schemaSubject: valueSubject(topic),
      schemaVersion: 1,
    })
    const producer = testKafka().producer({ createPartitioner: Partitioners.DefaultPartitioner })
    await producer.connect()
    await producer.send({
      topic,
      messages: [{ key, value: serde.encodeSync(ids.valueId, value), headers: toHeaders(env) }],
    })
    await producer.disconnect()

    const consumer = testKafka().consumer({ groupId: uniqueName('wire') })
    await consumer.connect()
    await consumer.subscribe({ topic, fromBeginning: true })
    const got = await new Promise<{ key: Buffer; value: Buffer; headers: any }>((resolve) => {
      void consumer.run({
        eachMessage: async ({ message }) =>
          resolve({ key: message.key!, value: message.value!, headers: message.headers }),
      })
    })
    await consumer.disconnect()

    const k = await specDecode(reg.url, got.key)
    expect(k).to.deep.equal({ id: ids.keyId, value: { manufacturerId: 'acme', sku: 'SKU-1', locationId: 'DE-HAM-1' } })
    const v = await specDecode(reg.url, got.value)
    expect(v.id).to.equal(ids.valueId)
    expect(v.value).to.deep.equal(value)
    expect(fromHeaders(got.headers)).to.deep.equal(env)
    // The subjects follow TopicNameStrategy.
    expect(
      ((await (await fetch(`${reg.url}/subjects/${keySubject(topic)}/versions/latest`)).json()) as { id: number }).id,
    ).to.equal(ids.keyId)
  })

  it(
    'decodes an old version into a newer reader (and back) with cached resolvers, ' + 'no I/O after the first',
    async () => {
      const client = new RegistryClient({ url: reg.url })
      const serde = new AvroSerde(client)
      const subject = uniqueName('evolve') + '-value'
      const v1 = JSON.stringify({ type: 'record', name: 'E', fields: [{ name: 'a', type: 'string' }] })
      const v2 = JSON.stringify({
        type: 'record',
        name: 'E',
        fields: [
          { name: 'a', type: 'string' },
          {
            name: 'price',
            type: ['null', { type: 'bytes', logicalType: 'decimal', precision: 9, scale: 2 }],
            default: null,
          },
        ],
      })
      const id1 = await serde.register(subject, v1)
      const id2 = await serde.register(subject, v2)
      const reader2 = await serde.readerFor(subject, 2)
      const reader1 = await serde.readerFor(subject, 1)
      const old = serde.encodeSync(id1, { a: 'x' })
      const fresh = serde.encodeSync(id2, { a: 'y', price: decimalToBytes('-1234.50', 2) })

      let requests = 0
      const original = client.request.bind(client)
      client.request = (async (...args: Parameters<typeof original>) => {
        requests++
        return original(...args)
      }) as typeof client.request
      expect({ ...(serde.decodeSync(old, reader2) as object) }).to.deep.equal({ a: 'x', price: null })
      const down = serde.decodeSync(fresh, reader1) as { a: string }
      expect({ ...down }).to.deep.equal({ a: 'y' })
      const same = serde.decodeSync(fresh) as { price: Buffer }
      expect(bytesToDecimal(same.price, 2)).to.equal('-1234.50')
      for (let i = 0; i < 100; i++) await serde.decode(old, reader2)
      expect(requests).to.equal(0)

      // A fresh serde loads the writer's schema by id on first decode.
      const other = new AvroSerde(new RegistryClient({ url: reg.url }))
      expect({ ...((await other.decode(old)) as object) }).to.deep.equal({ a: 'x' })
      expect(() => other.decodeSync(Buffer.from([1, 0, 0, 0, 1]))).to.throw(/magic byte/)
      expect(() => serde.encodeSync(id1, { a: 42 })).to.throw(/invalid a/)
    },
  )
})
