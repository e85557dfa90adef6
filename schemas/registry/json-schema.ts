/**
 * JSON Schema for the registry (schemaType JSON), with Confluent's semantics where we implement them:
 *
 * - a schema is valid when ajv compiles it (draft-07, the default of Confluent's JSON serializers;
 *   draft-06 and 2019-09 when `$schema` names them; draft-04 read as draft-07, 2020-12 as 2019-09), its references registered first under their `name`, which is
 *   the URI a `$ref` uses (e.g. "customer.json", as Confluent's JsonSchema resolves references);
 * - the stored text is the compact JSON (Confluent's JsonSchema.canonicalString: Jackson's
 *   JsonNode.toString(), keys as written); normalize=true sorts the keys of every object;
 * - compatibility is a subset of Confluent's JsonSchemaDiff (see `jsonReadErrors` for which
 *   differences are checked, each named as Confluent names it).
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
  visitReferences(
    source.references,
    lookup,
    (ref, target, key) => {
      const refJson = parse(target.schema, `referenced schema ${key}`) as object
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
    return { json, validate }
  } catch (err) {
    throw errors.invalidSchema(`not a valid JSON Schema: ${(err as Error).message}`)
  }
}

/** The stored text: compact JSON, keys sorted when normalizing. */
export function jsonStoredText(c: CompiledJson, normalize: boolean): string {
  return JSON.stringify(normalize ? sortKeys(c.json) : c.json)
}

type S = Record<string, unknown>
const isObj = (v: unknown): v is S => v !== null && typeof v === 'object' && !Array.isArray(v)
const typesOf = (s: S): string[] => (Array.isArray(s.type) ? (s.type as string[]) : typeof s.type === 'string' ? [s.type] : [])
/** An object schema is an open content model unless additionalProperties is false (Confluent's term). */
const isOpen = (s: S): boolean => s.additionalProperties !== false && !(isObj(s.additionalProperties) && Object.keys(s.additionalProperties).length > 0)

/**
 * Why data valid against `writer` may not be valid against `reader` (Confluent's BACKWARD check is
 * reader = new schema, writer = old one), as Confluent's JsonSchemaDiff names it. Checked: TYPE_CHANGED
 * (integer to number is TYPE_EXTENDED, compatible), REQUIRED_ATTRIBUTE_ADDED, PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL,
 * REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL, PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL,
 * ADDITIONAL_PROPERTIES_NARROWED/REMOVED, ENUM_ARRAY_NARROWED, MAX_LENGTH/MIN_LENGTH/MAXIMUM/MINIMUM/
 * MAX_ITEMS/MIN_ITEMS/MAX_PROPERTIES/MIN_PROPERTIES narrowed (added or tightened), PATTERN_CHANGED,
 * recursing into properties and items. `$ref`s are compared by their text, not followed.
 */
export function jsonReadErrors(reader: unknown, writer: unknown, path = '#'): string[] {
  if (reader === true || writer === false) return []
  if (reader === false) return [`${path}: SCHEMA_NARROWED: the new schema accepts nothing`]
  if (!isObj(reader) || !isObj(writer)) return []
  const out: string[] = []
  const r = reader
  const w = writer
  const rt = typesOf(r)
  const wt = typesOf(w)
  if (rt.length > 0) {
    const lost = (wt.length === 0 ? ['any type'] : wt).filter((t) => !rt.includes(t) && !(t === 'integer' && rt.includes('number')))
    if (lost.length > 0) out.push(`${path}: TYPE_CHANGED (or TYPE_NARROWED): ${JSON.stringify(w.type ?? 'any')} to ${JSON.stringify(r.type)}`)
  }
  if (typeof r.$ref === 'string' && r.$ref !== w.$ref) out.push(`${path}: TYPE_CHANGED: $ref ${JSON.stringify(w.$ref)} to ${JSON.stringify(r.$ref)}`)
  if (Array.isArray(r.enum)) {
    const wEnum = Array.isArray(w.enum) ? (w.enum as unknown[]) : null
    if (!wEnum || wEnum.some((x) => !(r.enum as unknown[]).some((y) => JSON.stringify(y) === JSON.stringify(x)))) out.push(`${path}: ENUM_ARRAY_NARROWED`)
  }
  if ('const' in r && JSON.stringify(r.const) !== JSON.stringify(w.const)) out.push(`${path}: CONST_CHANGED`)
  if (typeof r.pattern === 'string' && r.pattern !== w.pattern) out.push(`${path}: PATTERN_${w.pattern === undefined ? 'ADDED' : 'CHANGED'}`)
  const upper = ['maxLength', 'maximum', 'exclusiveMaximum', 'maxItems', 'maxProperties'] as const
  const lower = ['minLength', 'minimum', 'exclusiveMinimum', 'minItems', 'minProperties'] as const
  for (const k of upper) if (typeof r[k] === 'number' && (typeof w[k] !== 'number' || (r[k] as number) < (w[k] as number))) out.push(`${path}: ${snake(k)}_${w[k] === undefined ? 'ADDED' : 'DECREASED'}`)
  for (const k of lower) if (typeof r[k] === 'number' && (typeof w[k] !== 'number' || (r[k] as number) > (w[k] as number))) out.push(`${path}: ${snake(k)}_${w[k] === undefined ? 'ADDED' : 'INCREASED'}`)

  const rProps = isObj(r.properties) ? r.properties : {}
  const wProps = isObj(w.properties) ? w.properties : {}
  const rReq = new Set(Array.isArray(r.required) ? (r.required as string[]) : [])
  const wReq = new Set(Array.isArray(w.required) ? (w.required as string[]) : [])
  for (const name of rReq) if (!wReq.has(name)) out.push(`${path}/properties/${name}: REQUIRED_${name in wProps ? 'ATTRIBUTE' : 'PROPERTY'}_ADDED${name in wProps ? '' : '_TO_UNOPEN_CONTENT_MODEL'}`)
  for (const [name, rs] of Object.entries(rProps)) {
    if (name in wProps) out.push(...jsonReadErrors(rs, wProps[name], `${path}/properties/${name}`))
    else if (isOpen(w) && !rReq.has(name)) {
      // Old data may hold this property with any value (open content model): only an "anything" schema is safe.
      if (!(rs === true || (isObj(rs) && Object.keys(rs).length === 0))) out.push(`${path}/properties/${name}: PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL`)
    }
  }
  for (const name of Object.keys(wProps)) {
    if (!(name in rProps) && !isOpen(r)) out.push(`${path}/properties/${name}: PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL`)
  }
  if (isOpen(w) && !isOpen(r)) out.push(`${path}: ADDITIONAL_PROPERTIES_${r.additionalProperties === false ? 'REMOVED' : 'NARROWED'}`)
  if (r.items !== undefined && !Array.isArray(r.items)) out.push(...jsonReadErrors(r.items, w.items ?? {}, `${path}/items`))
  return out
}

const snake = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()
