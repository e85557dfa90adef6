/**
 * The JSON Schema drafts the registry and the JsonSerde validate with (schemas/registry/json-schema.ts):
 * each `$schema` compiled by the ajv 8 class of its draft, so keywords only that draft has take effect.
 */
import { expect } from 'chai'
import { compileJsonSchema } from '../../schemas/registry/json-schema.ts'

const compile = (schema: unknown) =>
  compileJsonSchema({ schema: JSON.stringify(schema), references: [] }, () => undefined).validate

describe('JSON Schema drafts (ajv 8)', () => {
  it('2020-12: prefixItems and items as the rest of a tuple, $defs, dependentRequired', () => {
    const v = compile({
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      type: 'array',
      prefixItems: [{ $ref: '#/$defs/s' }],
      items: false,
      $defs: { s: { type: 'string' } },
    })
    expect([v(['a']), v(['a', 1]), v([1])]).to.deep.equal([true, false, false])
    const d = compile({
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      type: 'object',
      dependentRequired: { a: ['b'] },
    })
    expect([d({ a: 1, b: 2 }), d({ a: 1 })]).to.deep.equal([true, false])
  })

  it('2019-09: unevaluatedProperties; draft-07: items as a tuple with additionalItems; draft-06', () => {
    const u = compile({
      $schema: 'https://json-schema.org/draft/2019-09/schema',
      allOf: [{ properties: { a: { type: 'string' } } }],
      unevaluatedProperties: false,
    })
    expect([u({ a: 'x' }), u({ a: 'x', b: 1 })]).to.deep.equal([true, false])
    const t = compile({
      $schema: 'http://json-schema.org/draft-07/schema#',
      type: 'array',
      items: [{ type: 'string' }],
      additionalItems: false,
    })
    expect([t(['a']), t(['a', 'b'])]).to.deep.equal([true, false])
    const six = compile({
      $schema: 'http://json-schema.org/draft-06/schema#',
      type: 'object',
      properties: { n: { type: 'integer', exclusiveMinimum: 0 } },
    })
    expect([six({ n: 1 }), six({ n: 0 })]).to.deep.equal([true, false])
  })

  it(
    'draft-04: its boolean exclusiveMinimum/exclusiveMaximum and `id` mean what ' + 'they meant, in every subschema',
    () => {
      const D4 = 'http://json-schema.org/draft-04/schema#'
      const four = compile({ $schema: D4, type: 'object', properties: { n: { type: 'integer', minimum: 0 } } })
      expect([four({ n: 0 }), four({ n: -1 })]).to.deep.equal([true, false])
      const exclusive = compile({
        $schema: D4,
        type: 'object',
        properties: { n: { type: 'number', minimum: 0, exclusiveMinimum: true, maximum: 10, exclusiveMaximum: false } },
      })
      expect([exclusive({ n: 0 }), exclusive({ n: 0.5 }), exclusive({ n: 10 }), exclusive({ n: 10.5 })]).to.deep.equal([
        false,
        true,
        true,
        false,
      ])
      const nested = compile({
        $schema: D4,
        id: 'http://example.com/order.json',
        definitions: { qty: { type: 'integer', minimum: 0, exclusiveMinimum: true } },
        type: 'object',
        properties: { lines: { type: 'array', items: { $ref: '#/definitions/qty' } } },
      })
      expect([nested({ lines: [1, 2] }), nested({ lines: [1, 0] })]).to.deep.equal([true, false])
    },
  )
})
