/**
 * JSON Schema and Protobuf in the built-in registry (schemaType, references, each type's compatibility
 * rules as Confluent names them), the serde's JSON and Protobuf wire formats (message indexes), and
 * @kafkajs/confluent-schema-registry's JSON and Protobuf paths against both.
 */
import { expect } from 'chai'
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry'
import protobuf from 'protobufjs'
import { createRequire } from 'node:module'
import { deleteTopics, http, startTestRegistry } from '../helpers/registry.ts'
import { uniqueName } from '../helpers/env.ts'
import type { RegistryServer } from '../../schemas/registry/index.ts'
import {
  JsonSerde,
  ProtobufSerde,
  RegistryClient,
  decodeMessageIndexes,
  encodeMessageIndexes,
} from '../../schemas/serde/index.ts'

const require = createRequire(import.meta.url)
const descriptor = require('protobufjs/ext/descriptor') as {
  FileDescriptorProto: protobuf.Type
  FileDescriptorSet: protobuf.Type
}

describe('schema registry: JSON Schema and Protobuf', function () {
  let reg: RegistryServer & { topic: string }
  let u: string
  const s = () => uniqueName('types') + '-value'
  const run = `r${Date.now()}`
  const register = (subject: string, body: Record<string, unknown>) =>
    http(`${u}/subjects/${subject}/versions`, 'POST', body)

  before(async () => {
    reg = await startTestRegistry()
    u = reg.url
  })
  after(async () => {
    await reg?.close()
    await deleteTopics(reg.topic)
  })

  describe('JSON Schema', () => {
    const obj = (props: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
      JSON.stringify({ title: run, type: 'object', properties: props, ...extra })

    it('registers with schemaType JSON, stores compact JSON, refuses an invalid schema (42201)', async () => {
      const subject = s()
      const pretty = JSON.stringify(
        { type: 'object', title: run, properties: { sku: { type: 'string' } }, required: ['sku'] },
        null,
        2,
      )
      const r = await register(subject, { schemaType: 'JSON', schema: pretty })
      expect(r.status, JSON.stringify(r.body)).to.equal(200)
      expect(r.body.schemaType).to.equal('JSON')
      expect(r.body.schema).to.equal(JSON.stringify(JSON.parse(pretty)))
      expect((await http(`${u}/subjects/${subject}/versions/1`)).body).to.include({ schemaType: 'JSON', id: r.body.id })
      expect((await http(`${u}/schemas/ids/${r.body.id}`)).body.schemaType).to.equal('JSON')
      const bad = await register(s(), { schemaType: 'JSON', schema: JSON.stringify({ type: 'nonsense' }) })
      expect([bad.status, bad.body.error_code]).to.deep.equal([422, 42201])
      expect(bad.body.message).to.match(/not a valid JSON Schema/)
      // Every draft Confluent accepts registers (draft-04 and 2020-12 read as the closest drafts ajv 7 has).
      for (const draft of [
        'http://json-schema.org/draft-04/schema#',
        'http://json-schema.org/draft-06/schema#',
        'https://json-schema.org/draft/2019-09/schema',
        'https://json-schema.org/draft/2020-12/schema',
      ]) {
        const d = await register(s(), {
          schemaType: 'JSON',
          schema: JSON.stringify({ $schema: draft, title: run, type: 'object', properties: { a: { type: 'string' } } }),
        })
        expect(d.status, `${draft}: ${JSON.stringify(d.body)}`).to.equal(200)
      }
      // The same text under AVRO is another schema, and cannot be an Avro one.
      expect((await register(subject, { schema: pretty })).body.error_code).to.equal(42201)
    })

    it(
      'resolves references by name ($ref) and checks compatibility as Confluent ' + '(open vs closed content model)',
      async () => {
        const addr = s()
        await register(addr, {
          schemaType: 'JSON',
          schema: JSON.stringify({ type: 'object', properties: { city: { type: 'string' } }, required: ['city'] }),
        })
        const refs = [{ name: 'address.json', subject: addr, version: 1 }]
        const subject = s()
        const withRef = await register(subject, {
          schemaType: 'JSON',
          schema: obj({ home: { $ref: 'address.json' } }),
          references: refs,
        })
        expect(withRef.status, JSON.stringify(withRef.body)).to.equal(200)
        expect(
          (await register(s(), { schemaType: 'JSON', schema: obj({ home: { $ref: 'address.json' } }) })).body
            .error_code,
        ).to.equal(42201)

        const check = async (subj: string, schema: string, references?: unknown[]) =>
          (
            await http(`${u}/compatibility/subjects/${subj}/versions/latest?verbose=true`, 'POST', {
              schemaType: 'JSON',
              schema,
              references,
            })
          ).body
        // $ref targets are followed: the same text referring to another subject whose city is an integer is a type
        // change
        // there.
        const addr2 = s()
        await register(addr2, {
          schemaType: 'JSON',
          schema: JSON.stringify({ type: 'object', properties: { city: { type: 'integer' } }, required: ['city'] }),
        })
        expect((await check(subject, obj({ home: { $ref: 'address.json' } }), refs)).is_compatible).to.equal(true)
        const moved = await check(subject, obj({ home: { $ref: 'address.json' } }), [
          { name: 'address.json', subject: addr2, version: 1 },
        ])
        expect(moved.is_compatible).to.equal(false)
        expect(moved.messages.join()).to.match(/#\/properties\/home\/properties\/city: TYPE_CHANGED/)
        const open = s()
        await register(open, { schemaType: 'JSON', schema: obj({ a: { type: 'string' }, b: { type: 'integer' } }) })
        // BACKWARD: adding a property to an open content model is not compatible (old data may hold it with any value)
        // ...
        const added = await check(open, obj({ a: { type: 'string' }, b: { type: 'integer' }, c: { type: 'string' } }))
        expect(added.is_compatible).to.equal(false)
        expect(added.messages.join()).to.match(/PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL/)
        // ... removing one is; widening integer to number is; changing a type is not.
        expect((await check(open, obj({ a: { type: 'string' } }))).is_compatible).to.equal(true)
        expect((await check(open, obj({ a: { type: 'string' }, b: { type: 'number' } }))).is_compatible).to.equal(true)
        expect((await check(open, obj({ a: { type: 'integer' }, b: { type: 'integer' } }))).messages.join()).to.match(
          /TYPE_CHANGED/,
        )
        expect(
          (
            await check(open, obj({ a: { type: 'string' }, b: { type: 'integer' } }, { required: ['a'] }))
          ).messages.join(),
        ).to.match(/REQUIRED_ATTRIBUTE_ADDED/)
        const closed = s()
        await register(closed, {
          schemaType: 'JSON',
          schema: obj({ a: { type: 'string' } }, { additionalProperties: false }),
        })
        // A closed content model may gain an optional property, and may not lose one.
        expect(
          (await check(closed, obj({ a: { type: 'string' }, z: { type: 'string' } }, { additionalProperties: false })))
            .is_compatible,
        ).to.equal(true)
        expect((await check(closed, obj({}, { additionalProperties: false }))).messages.join()).to.match(
          /PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL/,
        )
        const r409 = await register(open, { schemaType: 'JSON', schema: obj({ a: { type: 'integer' } }) })
        expect([r409.status, r409.body.error_code]).to.deep.equal([409, 40901])
        // Another schema type under the same subject is incompatible.
        expect(
          (await check(open, JSON.stringify({ type: 'record', name: 'R', fields: [] }).replace(/^/, ''))).is_compatible,
        ).to.equal(false)
      },
    )

    it(
      'the serde writes and reads JSON in the wire format, validating; the kafkajs ' + 'client reads and writes it too',
      async () => {
        const subject = s()
        const schema = obj({ sku: { type: 'string' }, qty: { type: 'integer', minimum: 0 } }, { required: ['sku'] })
        const serde = new JsonSerde(new RegistryClient({ url: u }))
        const id = await serde.register(subject, schema)
        const buf = serde.encodeSync(id, { sku: 'A-1', qty: 3 })
        expect([buf[0], buf.readInt32BE(1)]).to.deep.equal([0, id])
        expect(JSON.parse(buf.subarray(5).toString())).to.deep.equal({ sku: 'A-1', qty: 3 })
        expect(() => serde.encodeSync(id, { qty: -1 })).to.throw(/does not match schema .*(sku|minimum|>= 0)/)
        expect(await new JsonSerde(new RegistryClient({ url: u })).decode(buf)).to.deep.equal({ sku: 'A-1', qty: 3 })

        const client = new SchemaRegistry({ host: u })
        expect(await client.decode(buf)).to.deep.equal({ sku: 'A-1', qty: 3 })
        const kid = (await client.register({ type: SchemaType.JSON, schema }, { subject: s() })).id
        expect(kid).to.equal(id) // the same schema is the same id
        expect(await serde.decode(await client.encode(kid, { sku: 'from-kafkajs' }))).to.deep.equal({
          sku: 'from-kafkajs',
        })
      },
    )
  })

  describe('Protobuf', () => {
    const money =
      `syntax = "proto3";\npackage ${run}.common;\n\nmessage Money {\n  int64 ` +
      `units = 1;\n  string currency = 2;\n}\n`
    const order = (extra = '') =>
      `syntax = "proto3";\npackage ${run}.shop;\n\nimport "money.proto";\nimport ` +
      `"google/protobuf/timestamp.proto";\n\n` +
      (`message Order {\n  string id = 1;\n  ${run}.common.Money total = 2;\n  ` +
        `repeated Line lines = 3;\n  map<string, string> tags = 4;\n  ` +
        `google.protobuf.Timestamp at = 5;\n${extra}`) +
      (`  message Line {\n    string sku = 1;\n    int32 qty = 2;\n  }\n}\n\nmessage ` +
        `Cancelled {\n  string order_id = 1;\n  Reason reason = 2;\n}\n\nenum Reason ` +
        `{\n  UNKNOWN = 0;\n  CUSTOMER = 1;\n}\n`)
    let moneySubject: string
    let refs: Array<{ name: string; subject: string; version: number }>

    before(async () => {
      moneySubject = s()
      const r = await register(moneySubject, { schemaType: 'PROTOBUF', schema: money })
      expect(r.status, JSON.stringify(r.body)).to.equal(200)
      refs = [{ name: 'money.proto', subject: moneySubject, version: 1 }]
    })

    it(
      'registers .proto text with its imports as references; refuses an import ' + 'without one and bad syntax',
      async () => {
        const subject = s()
        const r = await register(subject, { schemaType: 'PROTOBUF', schema: order(), references: refs })
        expect(r.status, JSON.stringify(r.body)).to.equal(200)
        expect(r.body).to.include({ schemaType: 'PROTOBUF', schema: order() })
        expect(
          (
            await http(`${u}/subjects/${subject}`, 'POST', {
              schemaType: 'PROTOBUF',
              schema: order(),
              references: refs,
            })
          ).body.id,
        ).to.equal(r.body.id)
        const noRef = await register(s(), { schemaType: 'PROTOBUF', schema: order() })
        expect([noRef.status, noRef.body.error_code]).to.deep.equal([422, 42201])
        expect(noRef.body.message).to.match(/import "money.proto" has no reference/)
        expect((await register(s(), { schemaType: 'PROTOBUF', schema: 'message { nope' })).body.error_code).to.equal(
          42201,
        )
      },
    )

    it(
      'format=serialized answers a FileDescriptorProto, and a base64 ' + 'FileDescriptorProto registers as .proto text',
      async () => {
        const subject = s()
        const { body } = await register(subject, { schemaType: 'PROTOBUF', schema: order(), references: refs })
        const b64 = (await http(`${u}/schemas/ids/${body.id}?format=serialized`)).body.schema as string
        const fdp = descriptor.FileDescriptorProto.toObject(
          descriptor.FileDescriptorProto.decode(Buffer.from(b64, 'base64')),
          { enums: String },
        ) as any
        expect(fdp.package).to.equal(`${run}.shop`)
        expect(fdp.dependency).to.deep.equal(['money.proto', 'google/protobuf/timestamp.proto'])
        expect(fdp.messageType.map((m: any) => m.name)).to.deep.equal(['Order', 'Cancelled'])
        const total = fdp.messageType[0].field.find((f: any) => f.name === 'total')
        expect(total.typeName).to.equal(`.${run}.common.Money`)
        expect(fdp.messageType[0].nestedType.map((m: any) => m.name)).to.deep.equal(['TagsEntry', 'Line'])

        // What Confluent's Python client registers: the base64 descriptor. Stored as .proto text.
        const other = s()
        const viaDescriptor = await register(other, { schemaType: 'PROTOBUF', schema: b64, references: refs })
        expect(viaDescriptor.status, JSON.stringify(viaDescriptor.body)).to.equal(200)
        expect(viaDescriptor.body.schema).to.match(/^syntax = "proto3";\npackage .*\.shop;\nimport "money.proto";/)
        expect(viaDescriptor.body.schema).to.match(/map<string, string> tags = 4;/)
      },
    )

    it(
      'checks compatibility as Confluent names it: field type and kind changes, ' + 'removed messages, package',
      async () => {
        const subject = s()
        await register(subject, { schemaType: 'PROTOBUF', schema: order(), references: refs })
        const check = async (schema: string) =>
          (
            await http(`${u}/compatibility/subjects/${subject}/versions/latest?verbose=true`, 'POST', {
              schemaType: 'PROTOBUF',
              schema,
              references: refs,
            })
          ).body
        expect((await check(order('  string note = 6;\n'))).is_compatible).to.equal(true)
        expect((await check(order().replace('int32 qty = 2', 'int64 qty = 2'))).is_compatible).to.equal(true)
        expect((await check(order().replace('int32 qty = 2', 'string qty = 2'))).messages.join()).to.match(
          /FIELD_SCALAR_KIND_CHANGED/,
        )
        expect((await check(order().replace('string id = 1', 'Line id = 1'))).messages.join()).to.match(
          /FIELD_KIND_CHANGED/,
        )
        expect((await check(order().replace(/message Cancelled \{[^}]*\}\n/, ''))).messages.join()).to.match(
          /MESSAGE_REMOVED/,
        )
        expect(
          (await check(order().replace(`package ${run}.shop;`, `package ${run}.other;`))).messages.join(),
        ).to.match(/PACKAGE_CHANGED/)
        const r409 = await register(subject, {
          schemaType: 'PROTOBUF',
          schema: order().replace('int32 qty = 2', 'string qty = 2'),
          references: refs,
        })
        expect(r409.body.error_code).to.equal(40901)
      },
    )

    it('the serde writes Confluent message indexes and reads them back; the kafkajs client decodes it', async () => {
      expect([...encodeMessageIndexes([0])]).to.deep.equal([0])
      expect([...encodeMessageIndexes([1])]).to.deep.equal([2, 2])
      expect([...encodeMessageIndexes([0, 1])]).to.deep.equal([4, 0, 2])
      for (const ix of [[0], [1], [0, 1], [3, 0, 200]])
        expect(decodeMessageIndexes(encodeMessageIndexes(ix), 0).indexes).to.deep.equal(ix)

      const subject = s()
      const serde = new ProtobufSerde(new RegistryClient({ url: u }))
      const id = await serde.register(subject, order(), refs)
      const value = {
        id: 'o-1',
        total: { units: '12', currency: 'EUR' },
        lines: [{ sku: 'A', qty: 2 }],
        tags: { channel: 'web' },
      }
      const buf = serde.encodeSync(id, value)
      expect([buf[0], buf.readInt32BE(1), buf[5]]).to.deep.equal([0, id, 0]) // first message: the single index byte 0
      const fresh = new ProtobufSerde(new RegistryClient({ url: u }))
      expect(await fresh.decode(buf)).to.deep.equal({ type: `${run}.shop.Order`, value })
      const cancelled = serde.encodeSync(id, { order_id: 'o-1', reason: 'CUSTOMER' }, 'Cancelled')
      expect([...cancelled.subarray(5, 7)]).to.deep.equal([2, 2]) // message index [1]
      expect(await fresh.decode(cancelled)).to.deep.equal({
        type: `${run}.shop.Cancelled`,
        value: { order_id: 'o-1', reason: 'CUSTOMER' },
      })
      const line = serde.encodeSync(id, { sku: 'B', qty: 1 }, 'Order.Line')
      expect((await fresh.decode(line)).type).to.equal(`${run}.shop.Order.Line`)
      expect(() => serde.encodeSync(id, { id: 7 } as never)).to.throw(/does not match message/)

      // kafkajs's client reads the first message type (it skips the index byte; it resolves no
      // well-known imports, so a schema without them) ...
      const client = new SchemaRegistry({ host: u })
      const moneyId = (await http(`${u}/subjects/${moneySubject}/versions/1`)).body.id
      await serde.load(moneyId)
      const decoded = (await client.decode(
        serde.encodeSync(moneyId, { units: '5', currency: 'EUR' }),
      )) as protobuf.Message & Record<string, unknown>
      expect(decoded.currency).to.equal('EUR')
      // ... and registers Protobuf schemas with references through our registry.
      const kid = (await client.register({ type: SchemaType.PROTOBUF, schema: money }, { subject: s() })).id
      expect((await http(`${u}/schemas/ids/${kid}`)).body).to.include({ schemaType: 'PROTOBUF', schema: money })
    })
  })
})
