/**
 * The three schema types of Confluent's registry behind one interface: parsing a schema with its
 * references into what is stored and compared, and compatibility as each type defines it (Avro
 * resolution, JSON Schema's and Protobuf's diffs). Confluent compares a schema with an earlier one of
 * another type as "Incompatible because of different schema type".
 */
import type avro from 'avsc'
import { avroText } from './avro-canonical.ts'
import {
  avroStoredText,
  compileAvro,
  readFailure,
  type CompatibilityLevel,
  type ReferenceLookup,
  type SchemaSource,
} from './avro.ts'
import { errors } from './errors.ts'
import { compileJsonSchema, jsonStoredText, type CompiledJson } from './json-schema.ts'
import { jsonIncompatibilities } from './json-schema-diff.ts'
import { compileProto, type CompiledProto } from './protobuf.ts'
import { protoReadErrors } from './protobuf-diff.ts'

/** As Confluent's GET /schemas/types answers. */
export const SCHEMA_TYPES = ['JSON', 'PROTOBUF', 'AVRO'] as const
export type SchemaType = (typeof SCHEMA_TYPES)[number]

export interface ParsedSchema {
  schemaType: SchemaType
  /** The text stored and answered. */
  stored: string
  /** What equal schemas share (Avro: with referenced types written out): how lookups find a version. */
  resolved: string
  avro?: avro.Type
  json?: CompiledJson
  proto?: CompiledProto
}

export function parseSchemaType(value: unknown): SchemaType {
  const t = value ?? 'AVRO'
  if (typeof t !== 'string' || !(SCHEMA_TYPES as readonly string[]).includes(t.toUpperCase())) {
    throw errors.invalidSchema(
      `schemaType ${JSON.stringify(value)} is not supported; this registry supports ${SCHEMA_TYPES.join(', ')}`,
    )
  }
  return t.toUpperCase() as SchemaType
}

export function parseSchema(
  schemaType: SchemaType,
  source: SchemaSource,
  lookup: ReferenceLookup,
  normalize: boolean,
): ParsedSchema {
  if (schemaType === 'AVRO') {
    const a = compileAvro(source, lookup)
    return {
      schemaType,
      stored: avroStoredText(a, normalize),
      resolved: avroText(a.json, 'resolved', a.referenced),
      avro: a.type,
    }
  }
  if (schemaType === 'JSON') {
    const json = compileJsonSchema(source, lookup)
    const stored = jsonStoredText(json, normalize)
    return { schemaType, stored, resolved: stored, json }
  }
  const proto = compileProto(source, lookup)
  return { schemaType, stored: proto.text, resolved: proto.text, proto }
}

/** Why `reader` cannot read data written with `writer` (empty: it can). */
export function readErrors(reader: ParsedSchema, writer: ParsedSchema): string[] {
  if (reader.schemaType !== writer.schemaType) return ['Incompatible because of different schema type']
  if (reader.avro && writer.avro) {
    const why = readFailure(reader.avro, writer.avro)
    return why ? [why] : []
  }
  // Confluent's diff runs from the earlier schema (original: the writer under BACKWARD) to the new one.
  if (reader.json && writer.json)
    return jsonIncompatibilities(
      { root: writer.json.json, refs: writer.json.refs },
      { root: reader.json.json, refs: reader.json.refs },
    )
  if (reader.proto && writer.proto) return protoReadErrors(reader.proto, writer.proto)
  return []
}

export interface VersionedSchema {
  version: number
  parsed: ParsedSchema
}

/**
 * Compatibility of `candidate` with the earlier versions (oldest first, deleted ones excluded), as
 * Confluent defines the levels: BACKWARD = the new schema reads data written with the previous one;
 * FORWARD = the previous schema reads data written with the new one; FULL = both; *_TRANSITIVE =
 * against every earlier version instead of the latest only. Returns the reasons it is not (empty: ok).
 */
export function compatibilityErrorsOf(
  level: CompatibilityLevel,
  candidate: ParsedSchema,
  earlier: VersionedSchema[],
): string[] {
  if (level === 'NONE' || earlier.length === 0) return []
  const against = level.endsWith('_TRANSITIVE') ? earlier : earlier.slice(-1)
  const backward = level.startsWith('BACKWARD') || level.startsWith('FULL')
  const forward = level.startsWith('FORWARD') || level.startsWith('FULL')
  const out: string[] = []
  for (const prev of against) {
    if (backward) {
      const why = readErrors(candidate, prev.parsed)
      if (why.length > 0)
        out.push(`${level}: the new schema cannot read data written with version ${prev.version} (${why.join('; ')})`)
    }
    if (forward) {
      const why = readErrors(prev.parsed, candidate)
      if (why.length > 0)
        out.push(`${level}: version ${prev.version} cannot read data written with the new schema (${why.join('; ')})`)
    }
  }
  return out
}
