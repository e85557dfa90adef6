/**
 * Interoperability with Confluent's own client, not ours: confluent-kafka for Python (librdkafka
 * plus Confluent's SchemaRegistryClient, AvroSerializer and AvroDeserializer), installed from PyPI
 * into a virtualenv in the user cache. It reads what the platform's serde wrote through our
 * registry, and what it writes through our registry our serde reads.
 */
import { spawn } from 'node:child_process'
import path from 'node:path'
import { expect } from 'chai'
import { Partitioners } from 'kafkajs'
import { createTopicsReady } from '../../common/kafka/admin.ts'
import { kafkaBrokers } from '../../config/index.ts'
import { AvroSerde, RegistryClient, TOPICS, registerTopicSchemas, type RegistryServer } from '../../schemas/index.ts'
import { JsonSerde, ProtobufSerde } from '../../schemas/serde/index.ts'
import { testConfig, testKafka, uniqueName } from '../helpers/env.ts'
import { confluentPython } from '../helpers/confluent-python.ts'
import { deleteTopics, quietLogger } from '../helpers/registry.ts'
import { adminPrincipal, startSchemaRegistry } from '../../schemas/registry/index.ts'

const USER = 'apikey'
const PASSWORD = 'dk_0123456789ab.p'.repeat(43)
const ourClient = (url: string) => new RegistryClient({ url, username: USER, password: PASSWORD })
const SCRIPT = path.join(path.dirname(new URL(import.meta.url).pathname), 'confluent_check.py')

describe("contract: Confluent's Python client (confluent-kafka) reads and writes through our registry", function () {
  this.timeout(360_000)
  let python: string
  let reg: RegistryServer & { topic: string }
  const topics: string[] = []

  before(async function () {
    const found = confluentPython()
    if ('missing' in found) {
      console.warn(`    SKIPPED: confluent-kafka for Python cannot be installed here (${found.missing})`)
      this.skip()
    }
    python = (found as { python: string }).python
    // Authenticated as the platform's registry is: the Python client sends basic.auth.user.info.
    const topic = uniqueName('schemas')
    const r = await startSchemaRegistry(testConfig(), quietLogger, {
      port: 0,
      host: '127.0.0.1',
      topic,
      auth: {
        authenticate: async (user, password) =>
          user === USER && password === PASSWORD ? adminPrincipal('python') : null,
      },
    })
    reg = Object.assign(r, { topic })
  })

  after(async () => {
    await reg?.close()
    if (reg) await deleteTopics(reg.topic, ...topics)
  })

  // Asynchronous on purpose: the registry serves from this very process while Python talks to it.
  async function run(
    command: 'consume' | 'produce' | 'consume-json' | 'produce-json' | 'consume-protobuf' | 'produce-protobuf',
    topic: string,
  ): Promise<unknown> {
    const child = spawn(python, [SCRIPT, command, topic], {
      env: {
        ...process.env,
        BROKERS: kafkaBrokers(testConfig()).join(','),
        REGISTRY_URL: reg.url,
        REGISTRY_AUTH: `${USER}:${PASSWORD}`,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000)
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
    clearTimeout(timer)
    expect(code, `${out}\n${err}`).to.equal(0)
    return JSON.parse(out.trim().split('\n').pop()!)
  }

  async function newTopic(): Promise<string> {
    const topic = uniqueName('confluent')
    const admin = testKafka().admin()
    await admin.connect()
    await createTopicsReady(admin, [{ topic, numPartitions: 1 }])
    await admin.disconnect()
    topics.push(topic)
    return topic
  }

  it('AvroDeserializer decodes an inventory event our serde produced (key and value)', async () => {
    const topic = await newTopic()
    const serde = new AvroSerde(ourClient(reg.url))
    const ids = (await registerTopicSchemas(serde, [{ ...TOPICS.inventoryLevels, name: topic }]))[topic]!
    const value = {
      manufacturerId: 'acme',
      sku: 'SKU-1',
      gtin: null,
      locationId: 'DE-HAM-1',
      locationType: 'WAREHOUSE',
      unitOfMeasure: 'EA',
      onHand: 1200,
      reserved: 200,
      available: 1000,
      incoming: [{ quantity: 500, expectedDate: 20_100, reference: 'PO-77' }],
      safetyStock: null,
      sequence: 7,
      occurredAt: 1_732_000_000_123,
    }
    const producer = testKafka().producer({ createPartitioner: Partitioners.DefaultPartitioner })
    await producer.connect()
    await producer.send({
      topic,
      acks: -1,
      messages: [
        {
          key: serde.encodeSync(ids.keyId, { manufacturerId: 'acme', sku: 'SKU-1', locationId: 'DE-HAM-1' }),
          value: serde.encodeSync(ids.valueId, value),
        },
      ],
    })
    await producer.disconnect()

    const got = (await run('consume', topic)) as { key: Record<string, unknown>; value: Record<string, unknown> }
    expect(got.key).to.deep.equal({ manufacturerId: 'acme', sku: 'SKU-1', locationId: 'DE-HAM-1' })
    expect(got.value).to.include({
      manufacturerId: 'acme',
      sku: 'SKU-1',
      locationId: 'DE-HAM-1',
      onHand: 1200,
      available: 1000,
      sequence: 7,
    })
    expect(got.value.occurredAt).to.match(/^2024-11-19 07:06:40\.123/) // timestamp-millis, as Confluent reads it
  })

  it('our serde decodes what AvroSerializer registered and produced', async () => {
    const topic = await newTopic()
    const { id } = (await run('produce', topic)) as { id: number }
    const subject = await ourClient(reg.url).request<string[]>('GET', `/schemas/ids/${id}/subjects`)
    expect(subject).to.deep.equal([`${topic}-value`])

    const serde = new AvroSerde(ourClient(reg.url))
    expect({ ...((await serde.decode(await firstValue(topic))) as object) }).to.deep.equal({
      sku: 'SKU-PY',
      qty: 42,
      note: 'from confluent-kafka',
    })
  })
  async function firstValue(topic: string): Promise<Buffer> {
    const consumer = testKafka().consumer({ groupId: uniqueName('confluent') })
    await consumer.connect()
    await consumer.subscribe({ topic, fromBeginning: true })
    const raw = await new Promise<Buffer>((resolve) => {
      void consumer.run({ eachMessage: async ({ message }) => resolve(message.value!) })
    })
    await consumer.disconnect()
    return raw
  }
  async function produceValue(topic: string, value: Buffer): Promise<void> {
    const producer = testKafka().producer({ createPartitioner: Partitioners.DefaultPartitioner })
    await producer.connect()
    await producer.send({ topic, acks: -1, messages: [{ value }] })
    await producer.disconnect()
  }
  const STOCK_PING_JSON = JSON.stringify({
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: 'StockPing',
    type: 'object',
    properties: { sku: { type: 'string' }, qty: { type: 'integer' }, note: { type: ['null', 'string'] } },
    required: ['sku', 'qty'],
  })
  const STOCK_PING_PROTO =
    'syntax = "proto3";\npackage example.partner;\n\nmessage StockPing {\n  ' +
    'string sku = 1;\n  int64 qty = 2;\n  string note = 3;\n}\n'

  it(
    'JSONSerializer registers and produces, our JsonSerde reads it; ' + 'JSONDeserializer reads what our serde wrote',
    async () => {
      const topic = await newTopic()
      const { id } = (await run('produce-json', topic)) as { id: number }
      expect(
        (await ourClient(reg.url).request<{ schemaType: string }>('GET', `/schemas/ids/${id}`)).schemaType,
      ).to.equal('JSON')
      expect(await new JsonSerde(ourClient(reg.url)).decode(await firstValue(topic))).to.deep.equal({
        sku: 'SKU-PY',
        qty: 42,
        note: 'from confluent-kafka',
      })

      const back = await newTopic()
      const serde = new JsonSerde(ourClient(reg.url))
      const ours = await serde.register(`${back}-value`, STOCK_PING_JSON)
      await produceValue(back, serde.encodeSync(ours, { sku: 'SKU-TS', qty: 7, note: null }))
      expect(((await run('consume-json', back)) as { value: unknown }).value).to.deep.equal({
        sku: 'SKU-TS',
        qty: 7,
        note: null,
      })
    },
  )

  it(
    'ProtobufSerializer registers a FileDescriptorProto and produces, our ' +
      'ProtobufSerde reads it; ProtobufDeserializer reads what our serde wrote',
    async () => {
      const topic = await newTopic()
      const { id } = (await run('produce-protobuf', topic)) as { id: number }
      const stored = await ourClient(reg.url).request<{ schemaType: string; schema: string }>(
        'GET',
        `/schemas/ids/${id}`,
      )
      expect(stored.schemaType).to.equal('PROTOBUF')
      expect(stored.schema).to.match(/message StockPing \{/)
      expect(await new ProtobufSerde(ourClient(reg.url)).decode(await firstValue(topic))).to.deep.equal({
        type: 'example.partner.StockPing',
        value: { sku: 'SKU-PY', qty: '42', note: 'from confluent-kafka' },
      })

      const back = await newTopic()
      const serde = new ProtobufSerde(ourClient(reg.url))
      const ours = await serde.register(`${back}-value`, STOCK_PING_PROTO)
      await produceValue(back, serde.encodeSync(ours, { sku: 'SKU-TS', qty: '7', note: 'from distributary' }))
      expect(((await run('consume-protobuf', back)) as { value: unknown }).value).to.deep.equal({
        sku: 'SKU-TS',
        qty: '7',
        note: 'from distributary',
      })
    },
  )
})
