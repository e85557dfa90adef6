/**
 * JSON Schema for the registry (schemaType JSON), with Confluent's semantics where we implement them:
 *
 * - a schema is valid when ajv compiles it (draft-07, the default of Confluent's JSON serializers;
 *   draft-06 and 2019-09 when `$schema` names them; draft-04 read as draft-07, 2020-12 as 2019-09), its references registered first under their `name`, which is
 *   the URI a `$ref` uses (e.g. "customer.json", as Confluent's JsonSchema resolves references);
 * - the stored text is the compact JSON (Confluent's JsonSchema.canonicalString: Jackson's
 *   JsonNode.toString(), keys as written); normalize=true sorts the keys of every object;
 * - compatibility is Confluent's JsonSchemaDiff, ported in json-schema-diff.ts.
 */
import { createRequire } from 'node:module'
import { errors } from './errors.ts'
import { visitReferences, type ReferenceLookup, type SchemaSource } from './avro.ts'

const require = createRequire(import.meta.url)
// ajv 7 ships CommonJS; its draft 2019-09 class lives in ajv/dist/2019.
type Validator = ((value: unknown) => boolean) & { errors?: Array<{ instancePath?: string; dataPath?: string; message?: string }> | null }
interface AjvLike {
  addSchema(schema: object, key: string): unknown
  addMetaSchema(schema: object): unknown
  compile(schema: object | boolean): Validator
}
type AjvCtor = new (options: Record<string, unknown>) => AjvLike
const Ajv = require('ajv').default as AjvCtor
const Ajv2019 = require('ajv/dist/2019').default as AjvCtor

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
  if (typeof json !== 'boolean' && (json === null || typeof json !== 'object' || Array.isArray(json))) throw errors.invalidSchema('a JSON Schema is a JSON object or a boolean')
  // ajv 7 knows draft-07 and 2019-09, and draft-06 with its meta-schema; a draft-04 schema is read as
  // draft-07 and a 2020-12 one as 2019-09 (their $schema set aside), the closest drafts it has.
  const declared = typeof json === 'object' && typeof (json as { $schema?: unknown }).$schema === 'string' ? (json as { $schema: string }).$schema : ''
  const draft2019 = /2019-09|2020-12/.test(declared)
  const ajv = new (draft2019 ? Ajv2019 : Ajv)({ strict: false, allErrors: true, validateSchema: true, addUsedSchema: false })
  if (/draft-06/.test(declared)) ajv.addMetaSchema(require('ajv/dist/refs/json-schema-draft-06.json'))
  const compilable = /draft-04|2020-12/.test(declared) ? (({ $schema: _s, ...rest }) => rest)(json as Record<string, unknown>) : json
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
