/**
 * JSON Schema for the registry (schemaType JSON), with Confluent's semantics where we implement them:
 *
 * - a schema is valid when ajv 8 compiles it with the draft its `$schema` names: draft-07 (the default
 *   of Confluent's JSON serializers) and draft-06 with ajv's default class, 2019-09 and 2020-12 with
 *   ajv/dist/2019 and ajv/dist/2020; draft-04 is migrated to draft-07 first (`draft04To07`: `id` becomes
 *   `$id`, boolean exclusiveMinimum/exclusiveMaximum become the numbers, as json-schema-migrate does;
 *   ajv 8 would need the ajv-draft-04 package, whose peer dependency on ajv 8 cannot be installed
 *   beside the ajv 7 that @kafkajs/confluent-schema-registry needs). Its references
 *   are registered first under their `name`, which is the URI a `$ref` uses (e.g. "customer.json", as
 *   Confluent's JsonSchema resolves references);
 * - the stored text is the compact JSON (Confluent's JsonSchema.canonicalString: Jackson's
 *   JsonNode.toString(), keys as written); normalize=true sorts the keys of every object;
 * - compatibility is Confluent's JsonSchemaDiff, ported in json-schema-diff.ts.
 */
import { createRequire } from 'node:module'
import { errors } from './errors.ts'
import { visitReferences, type ReferenceLookup, type SchemaSource } from './avro.ts'

const require = createRequire(import.meta.url)
// ajv 8 under the alias "ajv8" (package.json): the top-level "ajv" stays 7.2.4 for
// @kafkajs/confluent-schema-registry (the tests' registry client, a dev dependency), which depends on
// ajv ^7. ajv ships CommonJS.
type Validator = ((value: unknown) => boolean) & {
  errors?: Array<{ instancePath?: string; dataPath?: string; message?: string }> | null
}
interface AjvLike {
  addSchema(schema: object, key: string): unknown
  addMetaSchema(schema: object): unknown
  compile(schema: object | boolean): Validator
}
type AjvCtor = new (options: Record<string, unknown>) => AjvLike
const Ajv = require('ajv8').default as AjvCtor
const Ajv2019 = require('ajv8/dist/2019').default as AjvCtor
const Ajv2020 = require('ajv8/dist/2020').default as AjvCtor

export interface CompiledJson {
  json: unknown
  /** Validates a value against the schema (references included). */
  validate: Validator
  /** The referenced schemas by reference name (what a `$ref` names), for the compatibility diff. */
  refs: Map<string, unknown>
}

function parse(text: string, what: string): unknown {
  try {
    return JSON.parse(text)
  } catch (err) {
    throw errors.invalidSchema(`${what} is not valid JSON: ${(err as Error).message}`)
  }
}

const sortKeys = (v: unknown): unknown => {
  if (Array.isArray(v)) return v.map(sortKeys)
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {}
    for (const k of Object.keys(v as object).sort()) out[k] = sortKeys((v as Record<string, unknown>)[k])
    return out
  }
  return v
}

/** Compiles a JSON Schema with its references. Throws 42201 naming what is wrong. */
export function compileJsonSchema(source: SchemaSource, lookup: ReferenceLookup): CompiledJson {
  const json = parse(source.schema, 'schema')
  if (typeof json !== 'boolean' && (json === null || typeof json !== 'object' || Array.isArray(json)))
    throw errors.invalidSchema('a JSON Schema is a JSON object or a boolean')
  const declared =
    typeof json === 'object' && typeof (json as { $schema?: unknown }).$schema === 'string'
      ? (json as { $schema: string }).$schema
      : ''
  const Ctor = /2020-12/.test(declared) ? Ajv2020 : /2019-09/.test(declared) ? Ajv2019 : Ajv
  const ajv = new Ctor({ strict: false, allErrors: true, validateSchema: true, addUsedSchema: false })
  if (/draft-06/.test(declared)) ajv.addMetaSchema(require('ajv8/dist/refs/json-schema-draft-06.json'))
  const compilable = /draft-04/.test(declared) ? draft04To07(json) : json
  const refs = new Map<string, unknown>()
  visitReferences(
    source.references,
    lookup,
    (ref, target, key) => {
      const refJson = parse(target.schema, `referenced schema ${key}`) as object
      refs.set(ref.name, refJson)
      try {
        // Registered under the reference's name, which `$ref` uses; an `$id` inside would shadow it.
        const { $id: _id, ...rest } = refJson as Record<string, unknown>
        ajv.addSchema(rest, ref.name)
      } catch (err) {
        throw errors.invalidSchema(`referenced schema ${key} is not a valid JSON Schema: ${(err as Error).message}`)
      }
    },
    'name',
  )
  try {
    const validate = ajv.compile(compilable as object | boolean)
    return { json, validate, refs }
  } catch (err) {
    throw errors.invalidSchema(`not a valid JSON Schema: ${(err as Error).message}`)
  }
}

/** The stored text: compact JSON, keys sorted when normalizing. */
export function jsonStoredText(c: CompiledJson, normalize: boolean): string {
  return JSON.stringify(normalize ? sortKeys(c.json) : c.json)
}

/** Keywords whose value is one subschema, a list of them, or a map of them (draft-04). */
const ONE = ['additionalProperties', 'additionalItems', 'not', 'items']
const LIST = ['allOf', 'anyOf', 'oneOf', 'items']
const MAP = ['properties', 'patternProperties', 'definitions', 'dependencies']

/**
 * A draft-04 schema in draft-07 form, with the same meaning: `id` is `$id`; `exclusiveMaximum: true`
 * beside `maximum: x` is `exclusiveMaximum: x` (and false is dropped), the same for the minimum;
 * `$schema` names draft-07. Applied to every subschema. What draft-07 reads the same is left as is.
 */
export function draft04To07(schema: unknown, root = true): unknown {
  if (schema === null || typeof schema !== 'object' || Array.isArray(schema)) return schema
  const out: Record<string, unknown> = { ...(schema as Record<string, unknown>) }
  if (root) out.$schema = 'http://json-schema.org/draft-07/schema#'
  else delete out.$schema
  if (typeof out.id === 'string' && out.$id === undefined) {
    out.$id = out.id
    delete out.id
  }
  for (const [flag, bound] of [
    ['exclusiveMaximum', 'maximum'],
    ['exclusiveMinimum', 'minimum'],
  ] as const) {
    if (out[flag] === true && typeof out[bound] === 'number') {
      out[flag] = out[bound]
      delete out[bound]
    } else if (typeof out[flag] === 'boolean') delete out[flag]
  }
  for (const k of ONE) if (out[k] !== undefined && !Array.isArray(out[k])) out[k] = draft04To07(out[k], false)
  for (const k of LIST) if (Array.isArray(out[k])) out[k] = (out[k] as unknown[]).map((x) => draft04To07(x, false))
  for (const k of MAP) {
    const m = out[k]
    if (m && typeof m === 'object' && !Array.isArray(m))
      out[k] = Object.fromEntries(Object.entries(m).map(([n, v]) => [n, Array.isArray(v) ? v : draft04To07(v, false)]))
  }
  return out
}
