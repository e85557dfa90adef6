import fs from 'node:fs'
import { expect } from 'chai'
import { project } from '../../connectors/sink/entitlement.ts'
import { projectSchema } from '../../consumers/kafka-topic/schema-projection.ts'
import { parseAvro } from '../../schemas/registry/avro.ts'

const compile = (schema: unknown) => parseAvro({ schema: JSON.stringify(schema), references: [] }, () => undefined)
const deal = JSON.parse(fs.readFileSync(new URL('../../schemas/avro/deal-registration.avsc', import.meta.url), 'utf8'))

/** The value as the sink runtime projects it, written with the projected schema and read back. */
function roundTrip(schema: unknown, value: unknown, paths: string[]): unknown {
  const full = compile(schema)
  const decoded = full.fromBuffer(full.toBuffer(value))
  const projectedValue = project(decoded, paths)
  const type = compile(projectSchema(schema as never, paths))
  return JSON.parse(JSON.stringify(type.fromBuffer(type.toBuffer(projectedValue))))
}

describe('kafka-topic sink: the Avro schema of a projected value', () => {
  it('keeps the listed fields with their docs, logical types and enum defaults, through records and arrays', () => {
    const paths = ['dealId', 'status', 'endCustomer.name', 'lines.sku']
    const projected = projectSchema(deal, paths) as { fields: Array<{ name: string; doc?: string; type: any }> }
    expect(projected.fields.map((f) => f.name)).to.deep.equal(['dealId', 'status', 'endCustomer', 'lines'])
    expect(projected.fields[0]!.type).to.deep.equal({ type: 'string', logicalType: 'uuid' })
    expect(projected.fields[1]!.type.default).to.equal('UNKNOWN')
    expect(projected.fields[2]!.type.fields.map((f: { name: string }) => f.name)).to.deep.equal(['name'])
    expect(projected.fields[2]!.doc).to.equal(deal.fields.find((f: { name: string }) => f.name === 'endCustomer').doc)
    expect(projected.fields[3]!.type.items.fields.map((f: { name: string }) => f.name)).to.deep.equal(['sku'])
    const full = compile(deal)
    const random = full.fromBuffer(full.toBuffer(full.random())) as Record<string, any>
    expect(roundTrip(deal, random, paths)).to.deep.equal(
      JSON.parse(
        JSON.stringify({
          dealId: random.dealId,
          status: random.status,
          endCustomer: { name: random.endCustomer.name },
          lines: random.lines.map((l: { sku: string }) => ({ sku: l.sku })),
        }),
      ),
    )
  })

  it('every field (no projection) is the schema itself; no field left is the empty record', () => {
    expect(projectSchema(deal, undefined)).to.equal(deal)
    const none = projectSchema(deal, []) as { fields: unknown[]; name: string }
    expect(none.fields).to.deep.equal([])
    expect(compile(none).toBuffer({}).length).to.equal(0)
  })

  it('a path below a nullable record: null first with a null default, since the projection drops a null', () => {
    const schema = {
      type: 'record',
      name: 'R',
      namespace: 'n',
      fields: [
        { name: 'id', type: 'string' },
        {
          name: 'site',
          type: [
            'null',
            {
              type: 'record',
              name: 'Site',
              fields: [
                { name: 'city', type: 'string' },
                { name: 'zip', type: 'string' },
              ],
            },
          ],
          default: null,
        },
        { name: 'count', type: 'int' },
      ],
    }
    const paths = ['id', 'site.city', 'count.deeper']
    const projected = projectSchema(schema as never, paths) as {
      fields: Array<{ name: string; type: unknown; default?: unknown }>
    }
    expect(projected.fields.map((f) => f.name)).to.deep.equal(['id', 'site'])
    expect(projected.fields[1]!.default).to.equal(null)
    expect(roundTrip(schema, { id: 'a', site: { city: 'Hamburg', zip: '20095' }, count: 1 }, paths)).to.deep.equal({
      id: 'a',
      site: { city: 'Hamburg' },
    })
    expect(roundTrip(schema, { id: 'b', site: null, count: 1 }, paths)).to.deep.equal({ id: 'b', site: null })
  })

  it('a named type projected differently at two places gets a second name; the same projection is referenced', () => {
    const addr = {
      type: 'record',
      name: 'Address',
      fields: [
        { name: 'city', type: 'string' },
        { name: 'street', type: 'string' },
      ],
    }
    const schema = {
      type: 'record',
      name: 'Order',
      namespace: 'shop',
      fields: [
        { name: 'billing', type: addr },
        { name: 'shipping', type: 'Address' },
        { name: 'returns', type: 'Address' },
      ],
    }
    const projected = projectSchema(schema as never, ['billing.city', 'shipping.street', 'returns.city']) as {
      fields: Array<{ type: any }>
    }
    expect(projected.fields[0]!.type.name).to.equal('shop.Address')
    expect(projected.fields[1]!.type.name).to.equal('shop.Address_2')
    expect(projected.fields[2]!.type).to.equal('shop.Address')
    const v = {
      billing: { city: 'A', street: 'a' },
      shipping: { city: 'B', street: 'b' },
      returns: { city: 'C', street: 'c' },
    }
    expect(roundTrip(schema, v, ['billing.city', 'shipping.street', 'returns.city'])).to.deep.equal({
      billing: { city: 'A' },
      shipping: { street: 'b' },
      returns: { city: 'C' },
    })
  })
})
