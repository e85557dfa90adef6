/**
 * The texts of an Avro schema that Confluent's registry produces, written from the schema's JSON:
 *
 * - `canonical`: what Confluent stores and returns for a registration, i.e. Avro Java's
 *   `Schema.toString()` (AvroSchema.canonicalString): compact, keys in Avro's own order (type, name,
 *   namespace, doc, fields/symbols/items/values/size, default, custom properties, aliases), names
 *   written relative to the enclosing namespace, a named type written out at its first use only, and
 *   the types defined by the references written by name.
 * - `resolved`: the same, with the referenced types written out at their first use (format=resolved;
 *   also what a schema sent "fully inlined" is compared with when it is looked up, see registry.ts).
 * - `normalized`: Confluent's `normalize=true` form (AvroSchemaUtils.toNormalizedString): full names,
 *   `name` before `type`, every field with its `order`, properties sorted by key.
 *
 * The input has been accepted by avsc already (parseAvro), so it is a valid schema; this only writes.
 * One known difference with Java: a number in a default or property is written as JavaScript
 * prints it (Jackson keeps `1.0` where we write `1`).
 */

export const AVRO_PRIMITIVES = new Set(['null', 'boolean', 'int', 'long', 'float', 'double', 'bytes', 'string'])
const COMPLEX = new Set(['record', 'error', 'enum', 'array', 'map', 'fixed'])
const SCHEMA_RESERVED = new Set([
  'doc',
  'fields',
  'items',
  'name',
  'namespace',
  'size',
  'symbols',
  'values',
  'type',
  'aliases',
  'default',
])
const FIELD_RESERVED = new Set(['default', 'doc', 'name', 'order', 'type', 'aliases'])

type Obj = Record<string, unknown>
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v)

/**
 * A named type used in object form, `{"type": "ns.Name"}`, written as the name: Avro Java accepts
 * that form (Confluent does), avsc does not. Walks schema positions only (a field's own `type` is a
 * schema position; the field object is not).
 */
export function inlineNamedObjects(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(inlineNamedObjects)
  if (!isObj(schema)) return schema
  const t = schema.type
  if (typeof t === 'string' && !AVRO_PRIMITIVES.has(t) && !COMPLEX.has(t)) return t
  const out: Obj = { ...schema }
  if (typeof t !== 'string') out.type = inlineNamedObjects(t)
  if ((t === 'record' || t === 'error') && Array.isArray(schema.fields)) {
    out.fields = schema.fields.map((f) => (isObj(f) ? { ...f, type: inlineNamedObjects(f.type) } : f))
  }
  if (t === 'array' && 'items' in schema) out.items = inlineNamedObjects(schema.items)
  if (t === 'map' && 'values' in schema) out.values = inlineNamedObjects(schema.values)
  return out
}

interface Name {
  full: string
  short: string
  space: string | null
}

function nameOf(raw: string, namespace: unknown, enclosing: string | null): Name {
  const dot = raw.lastIndexOf('.')
  if (dot >= 0) return { full: raw, short: raw.slice(dot + 1), space: raw.slice(0, dot) }
  const space = typeof namespace === 'string' ? (namespace === '' ? null : namespace) : enclosing
  return { full: space ? `${space}.${raw}` : raw, short: raw, space }
}

/** Avro Java's Name.getQualified: the short name within its own namespace, unless it is a primitive's name. */
function qualified(n: Name, current: string | null): string {
  return n.space !== null && n.space === current && !AVRO_PRIMITIVES.has(n.short) ? n.short : n.full
}

/** Every named type a schema defines, by full name, with the JSON defining it. */
export function namedDefinitions(
  schema: unknown,
  into = new Map<string, Obj>(),
  space: string | null = null,
): Map<string, Obj> {
  if (Array.isArray(schema)) {
    for (const s of schema) namedDefinitions(s, into, space)
    return into
  }
  if (!isObj(schema)) return into
  const t = schema.type
  if (typeof t !== 'string') return namedDefinitions(t, into, space)
  if (t === 'record' || t === 'error' || t === 'enum' || t === 'fixed') {
    const n = nameOf(String(schema.name), schema.namespace, space)
    if (!into.has(n.full)) into.set(n.full, { ...schema, name: n.full, namespace: null })
    if (Array.isArray(schema.fields))
      for (const f of schema.fields) if (isObj(f)) namedDefinitions(f.type, into, n.space)
  } else if (t === 'array') namedDefinitions(schema.items, into, space)
  else if (t === 'map') namedDefinitions(schema.values, into, space)
  return into
}

export type AvroTextForm = 'canonical' | 'resolved' | 'normalized'

/**
 * Writes `schema` in one of the forms above. `referenced`: the named types the schema's references
 * define (namedDefinitions of each referenced schema).
 */
export function avroText(schema: unknown, form: AvroTextForm, referenced: Map<string, Obj> = new Map()): string {
  const written = new Set<string>(form === 'resolved' ? [] : referenced.keys())
  const defined = new Map<string, Name>()
  for (const full of referenced.keys()) defined.set(full, nameOf(full, undefined, null))
  const norm = form === 'normalized'
  const j = (v: unknown) => JSON.stringify(v)
  const obj = (pairs: Array<[string, string]>) => `{${pairs.map(([k, v]) => `${j(k)}:${v}`).join(',')}}`
  const props = (o: Obj, reserved: Set<string>): Array<[string, string]> => {
    const keys = Object.keys(o).filter((k) => !reserved.has(k))
    if (norm) keys.sort()
    return keys.map((k) => [k, j(o[k])])
  }

  const resolveRef = (raw: string, space: string | null): Name => {
    const n = nameOf(raw, undefined, space)
    if (defined.has(n.full) || referenced.has(n.full)) return defined.get(n.full) ?? n
    const bare = nameOf(raw, '', null)
    return defined.get(bare.full) ?? (referenced.has(bare.full) ? bare : n)
  }

  const write = (s: unknown, space: string | null): string => {
    if (typeof s === 'string') {
      if (AVRO_PRIMITIVES.has(s)) return j(s)
      const n = resolveRef(s, space)
      if (!written.has(n.full) && referenced.has(n.full)) return write(referenced.get(n.full), space)
      return norm ? j(n.full) : j(qualified(n, space))
    }
    if (Array.isArray(s)) return `[${s.map((b) => write(b, space)).join(',')}]`
    if (!isObj(s)) return j(s)
    const t = s.type
    if (typeof t !== 'string') return write(t, space)
    if (AVRO_PRIMITIVES.has(t)) {
      const p = props(s, SCHEMA_RESERVED)
      return p.length === 0 ? j(t) : obj([['type', j(t)], ...logicalFirst(p)])
    }
    if (t === 'array' || t === 'map') {
      const key = t === 'array' ? 'items' : 'values'
      return obj([['type', j(t)], [key, write(s[key], space)], ...logicalFirst(props(s, SCHEMA_RESERVED))])
    }
    if (!COMPLEX.has(t)) return write(t, space) // a name in object form
    const n = nameOf(String(s.name), s.namespace, space)
    if (written.has(n.full)) return norm ? j(n.full) : j(qualified(n, space))
    written.add(n.full)
    defined.set(n.full, n)
    const head: Array<[string, string]> = norm
      ? [
          ['name', j(n.full)],
          ['type', j(t)],
        ]
      : [
          ['type', j(t)],
          ['name', j(n.short)],
        ]
    if (!norm) {
      if (n.space !== null && n.space !== space) head.push(['namespace', j(n.space)])
      else if (n.space === null && space !== null) head.push(['namespace', '""'])
    }
    const doc = typeof s.doc === 'string' ? s.doc : undefined
    const aliases =
      Array.isArray(s.aliases) && s.aliases.length > 0
        ? (s.aliases as string[]).map((a) => nameOf(a, undefined, n.space))
        : []
    const body: Array<[string, string]> = []
    if (t === 'record' || t === 'error') {
      const fields = (Array.isArray(s.fields) ? s.fields : []).filter(isObj).map((f) => field(f, n.space))
      body.push(['fields', `[${fields.join(',')}]`])
    } else if (t === 'enum') {
      body.push(['symbols', j(s.symbols)])
    } else body.push(['size', j(s.size)])
    if (norm) {
      const tail: Array<[string, string]> = []
      if (doc) tail.push(['doc', j(doc)])
      if (aliases.length > 0) tail.push(['aliases', j(aliases.map((a) => a.full).sort())])
      if (t === 'enum' && typeof s.default === 'string') tail.push(['default', j(s.default)])
      return obj([...head, ...body, ...logicalFirst(props(s, SCHEMA_RESERVED)), ...tail])
    }
    if (doc !== undefined) head.push(['doc', j(doc)])
    if (t === 'enum' && typeof s.default === 'string') body.push(['default', j(s.default)])
    const tail: Array<[string, string]> =
      aliases.length > 0 ? [['aliases', j(aliases.map((a) => qualified(a, n.space)))]] : []
    return obj([...head, ...body, ...props(s, SCHEMA_RESERVED), ...tail])
  }

  const field = (f: Obj, space: string | null): string => {
    const pairs: Array<[string, string]> = [
      ['name', j(f.name)],
      ['type', write(f.type, space)],
    ]
    const order = typeof f.order === 'string' ? f.order.toUpperCase() : 'ASCENDING'
    const aliases = Array.isArray(f.aliases) && f.aliases.length > 0 ? (f.aliases as string[]) : []
    if (norm) {
      pairs.push(['order', j(order)])
      if (typeof f.doc === 'string') pairs.push(['doc', j(f.doc)])
      if (aliases.length > 0) pairs.push(['aliases', j([...aliases].sort())])
      if ('default' in f) pairs.push(['default', j(f.default)])
    } else {
      if (typeof f.doc === 'string') pairs.push(['doc', j(f.doc)])
      if ('default' in f) pairs.push(['default', j(f.default)])
      if (order !== 'ASCENDING') pairs.push(['order', j(order.toLowerCase())])
      if (aliases.length > 0) pairs.push(['aliases', j(aliases)])
    }
    return obj([...pairs, ...props(f, FIELD_RESERVED)])
  }

  /** Normalized form writes logicalType (and a decimal's precision, scale) first, as Confluent does. */
  const logicalFirst = (p: Array<[string, string]>): Array<[string, string]> => {
    if (!norm) return p
    const order = ['logicalType', 'precision', 'scale']
    const first = order.flatMap((k) => p.filter(([key, v]) => key === k && !(k === 'scale' && v === '0')))
    return [...first, ...p.filter(([k]) => !order.includes(k))]
  }

  return write(schema, null)
}
