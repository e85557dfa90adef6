/**
 * Avro for the registry: parsing a schema with its Confluent references, the canonical form that
 * decides whether two registrations are "the same schema", and compatibility decided by real Avro
 * schema resolution (avsc's `reader.createResolver(writer)` throws when the reader cannot read data
 * written with the writer's schema).
 */
import avro from 'avsc'
import { errors } from './errors.ts'
import { avroText, inlineNamedObjects, namedDefinitions } from './avro-canonical.ts'

export const COMPATIBILITY_LEVELS = [
  'NONE',
  'BACKWARD',
  'BACKWARD_TRANSITIVE',
  'FORWARD',
  'FORWARD_TRANSITIVE',
  'FULL',
  'FULL_TRANSITIVE',
] as const
export type CompatibilityLevel = (typeof COMPATIBILITY_LEVELS)[number]
export const DEFAULT_COMPATIBILITY: CompatibilityLevel = 'BACKWARD'

export function parseLevel(value: unknown): CompatibilityLevel {
  const up = typeof value === 'string' ? value.toUpperCase() : ''
  if (!(COMPATIBILITY_LEVELS as readonly string[]).includes(up)) throw errors.invalidCompatibility(value)
  return up as CompatibilityLevel
}

/** A Confluent schema reference: the named type `name` is defined by `subject` at `version`. */
export interface Reference {
  name: string
  subject: string
  version: number
}

export interface SchemaSource {
  schema: string
  references: Reference[]
}

/** Finds the schema a reference points at, or undefined when that subject/version does not exist. */
export type ReferenceLookup = (ref: Reference) => SchemaSource | undefined

export const MAX_SCHEMA_BYTES = 512 * 1024

function parseJson(schema: string, what: string): unknown {
  try {
    return JSON.parse(schema)
  } catch (err) {
    throw errors.invalidSchema(`${what} is not valid JSON: ${(err as Error).message}`)
  }
}

/** Validates a `references` array from a request body. */
export function parseReferences(value: unknown): Reference[] {
  if (value === undefined || value === null) return []
  if (!Array.isArray(value)) throw errors.invalidSchema('references must be an array of {name, subject, version}')
  return value.map((r, i) => {
    const ref = r as Partial<Reference>
    if (typeof ref?.name !== 'string' || ref.name === '')
      throw errors.invalidSchema(`references[${i}].name must be a non-empty string`)
    if (typeof ref.subject !== 'string' || ref.subject === '')
      throw errors.invalidSchema(`references[${i}].subject must be a non-empty string`)
    if (!Number.isInteger(ref.version) || (ref.version as number) < 1)
      throw errors.invalidSchema(`references[${i}].version must be a positive integer`)
    return { name: ref.name, subject: ref.subject, version: ref.version as number }
  })
}

/**
 * Visits the schemas that `refs` point at, depth first (a schema's own references before it), each
 * once (by subject/version, or by the reference's name for JSON Schema and Protobuf, whose references
 * are resolved by name), refusing circular and dangling references with 42201. Every schema type uses it.
 */
export function visitReferences(
  refs: Reference[],
  lookup: ReferenceLookup,
  visit: (ref: Reference, target: SchemaSource, key: string) => void,
  onceBy: 'version' | 'name' = 'version',
): void {
  const seen = new Set<string>()
  const load = (list: Reference[], path: string[]) => {
    for (const ref of list) {
      const key = `${ref.subject}/${ref.version}`
      if (path.includes(key))
        throw errors.invalidSchema(`circular reference through subject '${ref.subject}' version ${ref.version}`)
      const once = onceBy === 'name' ? ref.name : key
      if (seen.has(once)) continue
      const target = lookup(ref)
      if (!target)
        throw errors.invalidSchema(
          `reference '${ref.name}' points at subject '${ref.subject}' version ${ref.version}, which does not exist`,
        )
      load(target.references, [...path, key])
      seen.add(once)
      visit(ref, target, key)
    }
  }
  load(refs, [])
}

/** A compiled Avro schema: the avsc type, the schema's JSON, and the named types its references define. */
export interface CompiledAvro {
  type: avro.Type
  json: unknown
  referenced: Map<string, Record<string, unknown>>
}

/**
 * Builds the avsc type of a schema: referenced schemas first (depth first, each once) into one
 * registry of named types, then the schema itself, which may use those names.
 */
export function parseAvro(
  source: SchemaSource,
  lookup: ReferenceLookup,
  opts: Partial<avro.ForSchemaOptions> = {},
): avro.Type {
  return compileAvro(source, lookup, opts).type
}

export function compileAvro(
  source: SchemaSource,
  lookup: ReferenceLookup,
  opts: Partial<avro.ForSchemaOptions> = {},
): CompiledAvro {
  if (Buffer.byteLength(source.schema) > MAX_SCHEMA_BYTES) {
    throw errors.invalidSchema(
      `schema is ${Buffer.byteLength(source.schema)} bytes, more than the ${MAX_SCHEMA_BYTES} allowed`,
    )
  }
  const registry: Record<string, avro.Type> = {}
  const referenced = new Map<string, Record<string, unknown>>()
  visitReferences(source.references, lookup, (ref, target, key) => {
    const json = inlineNamedObjects(parseJson(target.schema, `referenced schema ${key}`))
    try {
      avro.Type.forSchema(json as avro.Schema, { ...opts, registry })
    } catch (err) {
      if (err instanceof Error && err.name === 'RegistryError') throw err
      throw errors.invalidSchema(`referenced schema ${key} is not valid Avro: ${(err as Error).message}`)
    }
    namedDefinitions(json, referenced)
    if (!registry[ref.name] && !Object.keys(registry).some((n) => n.endsWith(`.${ref.name}`))) {
      throw errors.invalidSchema(
        `reference '${ref.name}': subject '${ref.subject}' version ${ref.version} ` +
          `does not define a type named '${ref.name}'`,
      )
    }
  })
  const parsed = parseJson(source.schema, 'schema')
  if (parsed === null || (typeof parsed !== 'object' && typeof parsed !== 'string'))
    throw errors.invalidSchema('an Avro schema is a JSON object, array or type name')
  const json = inlineNamedObjects(parsed)
  try {
    return { type: avro.Type.forSchema(json as avro.Schema, { ...opts, registry }), json, referenced }
  } catch (err) {
    throw errors.invalidSchema(`not a valid Avro schema: ${(err as Error).message}`)
  }
}

/** The schema text as Confluent stores it (see avro-canonical.ts): canonical, or normalized when asked. */
export function avroStoredText(c: CompiledAvro, normalize: boolean): string {
  return avroText(c.json, normalize ? 'normalized' : 'canonical', c.referenced)
}

const PRIMITIVES = new Set(['null', 'boolean', 'int', 'long', 'float', 'double', 'bytes', 'string'])

function normalize(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(normalize)
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>
    const keys = Object.keys(o).sort()
    if (keys.length === 1 && keys[0] === 'type' && typeof o.type === 'string' && PRIMITIVES.has(o.type)) return o.type
    const out: Record<string, unknown> = {}
    for (const k of keys) out[k] = normalize(o[k])
    return out
  }
  return v
}

/**
 * The identity of a registration: schema type, the schema JSON with keys sorted and `{"type":"int"}`
 * written as `"int"`, and the references. Docs and defaults are part of it (they change meaning).
 * Pure function of the record, so every registry instance computes the same identity on replay.
 */
export function identityOf(schemaType: string, schema: string, references: Reference[]): string {
  let canon: string
  try {
    canon = JSON.stringify(normalize(JSON.parse(schema)))
  } catch {
    canon = schema
  }
  return `${schemaType}\u0000${canon}\u0000${JSON.stringify(references.map((r) => [r.name, r.subject, r.version]))}`
}

/** Minified schema text, as stored and returned (Confluent also returns a compact form). */
export function compact(schema: string): string {
  try {
    return JSON.stringify(JSON.parse(schema))
  } catch {
    return schema
  }
}

/** Why `reader` cannot read data written with `writer`; null when it can. */
export function readFailure(reader: avro.Type, writer: avro.Type): string | null {
  try {
    reader.createResolver(writer)
    return null
  } catch (err) {
    return (err as Error).message
  }
}
