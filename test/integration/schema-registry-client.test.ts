/**
 * The official-ish JS client, @kafkajs/confluent-schema-registry, against our registry: it must not
 * be able to tell it from Confluent's.
 */
import { expect } from 'chai'
import { SchemaRegistry, SchemaType, COMPATIBILITY } from '@kafkajs/confluent-schema-registry'
import { deleteTopics, http, startTestRegistry } from '../helpers/registry.ts'
import { uniqueName } from '../helpers/env.ts'
import type { RegistryServer } from '../../schemas/registry/index.ts'

const v1 = { type: 'record', name: 'Order', namespace: 'test.client', fields: [{ name: 'id', type: 'string' }] }
const v2 = { ...v1, fields: [...v1.fields, { name: 'qty', type: 'int', default: 1 }] }
const incompatible = { ...v1, fields: [...v1.fields, { name: 'mandatory', type: 'string' }] }

describe('schema registry with @kafkajs/confluent-schema-registry', function () {
  let reg: RegistryServer & { topic: string }
  let client: SchemaRegistry
  before(async () => {
    reg = await startTestRegistry()
    client = new SchemaRegistry({ host: reg.url, retry: { retries: 0 } })
  })
  after(async () => {
    await reg?.close()
    await deleteTopics(reg.topic)
  })

  it('registers, looks up, encodes and decodes', async () => {
    const subject = uniqueName('orders') + '-value'
    const { id } = await client.register({ type: SchemaType.AVRO, schema: JSON.stringify(v1) }, { subject })
    expect(id).to.be.a('number').greaterThan(0)
    expect(await client.getLatestSchemaId(subject)).to.equal(id)
    expect(await client.getRegistryIdBySchema(subject, { type: SchemaType.AVRO, schema: JSON.stringify(v1) })).to.equal(
      id,
    )
    // The client set the subject's compatibility on first registration, through PUT /config/{subject}.
    expect((await http(`${reg.url}/config/${subject}`)).body).to.deep.equal({ compatibilityLevel: 'BACKWARD' })

    const buf = await client.encode(id, { id: 'o-1' })
    expect(buf[0]).to.equal(0)
    expect(buf.readInt32BE(1)).to.equal(id)
    // A fresh client has no cache: decode fetches the schema by id from our registry.
    const fresh = new SchemaRegistry({ host: reg.url })
    expect({ ...(await fresh.decode(buf)) }).to.deep.equal({ id: 'o-1' })
  })

  it('registering the same schema again returns the same id and adds no version; ids are global', async () => {
    const a = uniqueName('a') + '-value'
    const b = uniqueName('b') + '-value'
    const schema = { type: SchemaType.AVRO as const, schema: JSON.stringify({ ...v1, name: 'Shared' }) }
    const first = await client.register(schema, { subject: a })
    const again = await client.register(schema, { subject: a })
    const other = await client.register(schema, { subject: b })
    expect(again.id).to.equal(first.id)
    expect(other.id).to.equal(first.id)
    expect((await http(`${reg.url}/subjects/${a}/versions`)).body).to.deep.equal([1])
  })

  it('enforces compatibility: an incompatible change is refused with 409 and not registered', async () => {
    const subject = uniqueName('compat') + '-value'
    const first = await client.register({ type: SchemaType.AVRO, schema: JSON.stringify(v1) }, { subject })
    const second = await client.register({ type: SchemaType.AVRO, schema: JSON.stringify(v2) }, { subject })
    expect(second.id).to.not.equal(first.id)
    let status: number | undefined
    try {
      await client.register({ type: SchemaType.AVRO, schema: JSON.stringify(incompatible) }, { subject })
    } catch (err) {
      status = (err as { status?: number }).status
    }
    expect(status).to.equal(409)
    expect((await http(`${reg.url}/subjects/${subject}/versions`)).body).to.deep.equal([1, 2])
    expect(await client.getLatestSchemaId(subject)).to.equal(second.id)
  })

  it('decodes into a chosen reader schema (resolution)', async () => {
    const subject = uniqueName('resolve') + '-value'
    const { id } = await client.register({ type: SchemaType.AVRO, schema: JSON.stringify(v1) }, { subject })
    const buf = await client.encode(id, { id: 'x' })
    const decoded = await client.decode(buf, { [SchemaType.AVRO]: { readerSchema: v2 } } as never)
    expect({ ...decoded }).to.deep.equal({ id: 'x', qty: 1 })
  })

  it('a client configured for another compatibility level is told the subject differs', async () => {
    const subject = uniqueName('level') + '-value'
    await client.register(
      { type: SchemaType.AVRO, schema: JSON.stringify(v1) },
      { subject, compatibility: COMPATIBILITY.FULL },
    )
    expect((await http(`${reg.url}/config/${subject}`)).body).to.deep.equal({ compatibilityLevel: 'FULL' })
    let message = ''
    try {
      await client.register({ type: SchemaType.AVRO, schema: JSON.stringify(v2) }, { subject })
    } catch (err) {
      message = (err as Error).message
    }
    expect(message).to.match(/Compatibility does not match the configuration \(BACKWARD != FULL\)/)
  })
})
