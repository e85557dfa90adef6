import { expect } from 'chai'
import avro from 'avsc'
import { CONTRACT_NAMES, contractSchema, releasedVersions } from '../../schemas/contracts.ts'
import { ALL_TOPICS } from '../../schemas/topics.ts'
import { readFailure } from '../../schemas/registry/avro.ts'

/** Every field of every record reachable from a schema, with its path. */
function fields(schema: any, path: string, out: Array<{ path: string; field: any }>, seen = new Set<string>()): void {
  if (Array.isArray(schema)) return schema.forEach((s) => fields(s, path, out, seen))
  if (schema === null || typeof schema !== 'object') return
  if (schema.type === 'record') {
    if (seen.has(schema.name)) return
    seen.add(schema.name)
    for (const f of schema.fields) {
      out.push({ path: `${path}.${f.name}`, field: f })
      fields(f.type, `${path}.${f.name}`, out, seen)
    }
  } else if (schema.type === 'array') fields(schema.items, path + '[]', out, seen)
  else if (schema.type === 'map') fields(schema.values, path + '{}', out, seen)
}

describe('event contracts (schemas/avro)', () => {
  for (const name of CONTRACT_NAMES) {
    describe(name, () => {
      const json = JSON.parse(contractSchema(name))
      it('parses as Avro', () => {
        expect(() => avro.Type.forSchema(json)).to.not.throw()
      })
      it('documents the record and every field, and every named type', () => {
        expect(json.doc, 'record doc').to.be.a('string').with.length.greaterThan(10)
        const all: Array<{ path: string; field: any }> = []
        fields(json, json.name, all)
        expect(all.length).to.be.greaterThan(0)
        for (const { path, field } of all)
          expect(field.doc, `${path} has no doc`).to.be.a('string').with.length.greaterThan(5)
        const named = JSON.stringify(json).match(/"type":"(enum|record)"/g) ?? []
        const documented = JSON.stringify(json).match(/"type":"(enum|record)","name":"[^"]+","doc":/g) ?? []
        expect(documented.length + (json.doc ? 0 : 0), 'every enum and record has a doc').to.be.at.least(
          named.length - 1,
        )
      })
      it('evolves BACKWARD-compatibly from every released version', () => {
        const released = releasedVersions(name)
        expect(released.length, 'a released version is kept under schemas/released/').to.be.greaterThan(0)
        const current = avro.Type.forSchema(json)
        for (const r of released) {
          expect(readFailure(current, avro.Type.forSchema(JSON.parse(r.schema))), `cannot read v${r.version}`).to.equal(
            null,
          )
        }
      })
    })
  }

  it('uses logical types where they belong', () => {
    const text = CONTRACT_NAMES.map(contractSchema).join('\n')
    expect(text).to.include('"logicalType":"timestamp-millis"')
    expect(text).to.include('"logicalType":"decimal"')
    expect(text).to.include('"logicalType":"uuid"')
    expect(text).to.include('"logicalType":"date"')
  })

  it('a change that breaks BACKWARD is caught by the same check', () => {
    const json = JSON.parse(contractSchema('inventory-level'))
    json.fields.push({ name: 'mandatoryNew', type: 'string', doc: 'no default' })
    const released = releasedVersions('inventory-level').at(-1)!
    expect(readFailure(avro.Type.forSchema(json), avro.Type.forSchema(JSON.parse(released.schema)))).to.match(
      /mandatoryNew/,
    )
  })

  it('declares each topic once, state topics compacted, with contracts that exist', () => {
    const names = ALL_TOPICS.map((t) => t.name)
    expect(new Set(names).size).to.equal(names.length)
    for (const t of ALL_TOPICS) {
      expect(CONTRACT_NAMES).to.include(t.keySchema)
      expect(CONTRACT_NAMES).to.include(t.valueSchema)
      expect(t.partitions).to.be.greaterThan(0)
      expect(t.eventTypes.length).to.be.greaterThan(0)
    }
    expect(ALL_TOPICS.find((t) => t.name === 'inventory.levels')!.cleanupPolicy).to.equal('compact')
    expect(ALL_TOPICS.find((t) => t.name === 'partners.profiles')!.cleanupPolicy).to.equal('compact')
  })
})
