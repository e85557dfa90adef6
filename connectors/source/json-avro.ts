/**
 * JSON (or CSV cells) to the in-memory values avsc encodes, checked against the Avro schema, with
 * every fault reported by its JSON Pointer path (RFC 6901), so an HTTP 400 or a reject file can name
 * each bad field rather than the first one. Logical types are accepted in their JSON-friendly forms:
 * decimal as a string ("12.50"), date as "YYYY-MM-DD" or days, timestamp-millis as RFC 3339 or ms.
 *
 * `strings: true` (CSV) reads every scalar from a string cell: "" is null where null is allowed,
 * numbers are parsed strictly, booleans are true/false/1/0.
 */
import { decimalToBytes } from '../../schemas/serde/decimal.ts'

type Schema = string | Schema[] | { type: Schema; [k: string]: unknown }

export interface FieldFault {
  /** JSON Pointer of the field, e.g. /3/incoming/0/quantity ('' for the item itself). */
  path: string
  message: string
}

export interface Converter {
  /** The value avsc encodes, or the faults (never both). */
  convert(value: unknown, basePath?: string): { value: unknown; faults: FieldFault[] }
  /** Top-level record field names. */
  readonly fields: readonly string[]
  /** Top-level fields that must be present (no default, not nullable). */
  readonly required: readonly string[]
}

const LONG_MAX = Number.MAX_SAFE_INTEGER
const INT_MIN = -(2 ** 31)
const INT_MAX = 2 ** 31 - 1
const DAY_MS = 86_400_000

const escaped = new Map<string, string>()
const esc = (k: string) => {
  let e = escaped.get(k)
  if (e === undefined) {
    e = k.replace(/~/g, '~0').replace(/\//g, '~1')
    if (escaped.size < 10_000) escaped.set(k, e)
  }
  return e
}
/** Records a fault; a top-level function, not a closure per call (tsx wraps named closures). */
function fail(faults: FieldFault[], path: string, message: string): undefined {
  faults.push({ path, message })
  return undefined
}

const kind = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v)

export function createConverter(schemaText: string | object, opts: { strings?: boolean } = {}): Converter {
  const root = (typeof schemaText === 'string' ? JSON.parse(schemaText) : schemaText) as Schema
  const named = new Map<string, Schema>()
  const strings = opts.strings === true

  // Register named types (records, enums, fixed) by full and short name.
  const collect = (s: Schema, ns: string) => {
    if (Array.isArray(s)) return s.forEach((x) => collect(x, ns))
    if (typeof s !== 'object' || s === null) return
    const t = s.type
    if ((t === 'record' || t === 'enum' || t === 'fixed' || t === 'error') && typeof s.name === 'string') {
      const n = s.name.includes('.') ? s.name : `${(s.namespace as string | undefined) ?? ns}.${s.name}`
      const childNs = n.includes('.') ? n.slice(0, n.lastIndexOf('.')) : ns
      named.set(n, s)
      named.set(s.name.split('.').pop()!, s)
      if (t === 'record' || t === 'error') for (const f of s.fields as Array<{ type: Schema }>) collect(f.type, childNs)
      return
    }
    if (t === 'array') collect(s.items as Schema, ns)
    else if (t === 'map') collect(s.values as Schema, ns)
    else if (typeof t === 'object') collect(t, ns)
  }
  collect(root, '')

  /** Per record schema, computed once: each field's name, escaped path suffix, default and nullability. */
  interface FieldPlan {
    name: string
    suffix: string
    type: Schema
    hasDefault: boolean
    rawDefault: unknown
    /** The converted default, shared when it is a primitive (strings, numbers, null). */
    constantDefault: boolean
    defaultValue: unknown
    nullable: boolean
  }
  const plans = new WeakMap<object, { fields: FieldPlan[]; known: Set<string> }>()
  const recordFields = (s: object) => {
    let plan = plans.get(s)
    if (!plan) {
      const fields = (s as { fields: Array<{ name: string; type: Schema; default?: unknown }> }).fields
      plan = {
        known: new Set(fields.map((f) => f.name)),
        fields: fields.map((f) => {
          const hasDefault = 'default' in f
          const converted = hasDefault ? defaultValue(f.type, f.default) : undefined
          const constantDefault = hasDefault && (converted === null || typeof converted !== 'object')
          return {
            name: f.name,
            suffix: `/${esc(f.name)}`,
            type: f.type,
            hasDefault,
            rawDefault: f.default,
            constantDefault,
            defaultValue: constantDefault ? converted : undefined,
            nullable: allowsNull(f.type),
          }
        }),
      }
      plans.set(s, plan)
    }
    return plan
  }
  const unionBranches = new WeakMap<Schema[], Schema[]>()
  const resolve = (s: Schema): Schema => (typeof s === 'string' && named.has(s) ? named.get(s)! : s)
  const typeName = (s: Schema): string => {
    s = resolve(s)
    if (typeof s === 'string') return s
    if (Array.isArray(s)) return 'union'
    return typeof s.type === 'string' ? s.type : typeName(s.type)
  }
  const allowsNull = (s: Schema) => {
    s = resolve(s)
    return s === 'null' || (Array.isArray(s) && s.some((x) => resolve(x) === 'null'))
  }

  const conv = (s: Schema, v: unknown, path: string, faults: FieldFault[]): unknown => {
    s = resolve(s)
    if (Array.isArray(s)) {
      if (v === null || v === undefined || (strings && v === '')) {
        if (s.some((x) => resolve(x) === 'null')) return null
        faults.push({ path, message: 'must not be null' })
        return undefined
      }
      let branches = unionBranches.get(s)
      if (!branches) unionBranches.set(s, (branches = s.filter((x) => resolve(x) !== 'null')))
      if (branches.length === 1) return conv(branches[0]!, v, path, faults)
      let firstFaults: FieldFault[] | undefined
      for (const b of branches) {
        const f: FieldFault[] = []
        const out = conv(b, v, path, f)
        if (f.length === 0) return out // avsc's default (wrapUnions: auto) takes unwrapped values
        firstFaults ??= f
      }
      faults.push({ path, message: `matches none of ${branches.map(typeName).join(', ')}` })
      return undefined
    }
    if (typeof s === 'object' && typeof s.type === 'object') return conv(s.type as Schema, v, path, faults)
    const t = typeof s === 'string' ? s : (s.type as string)
    const logical = typeof s === 'object' ? (s.logicalType as string | undefined) : undefined
    if (v === undefined) return fail(faults, path, 'is required')
    switch (t) {
      case 'null':
        return v === null || (strings && v === '') ? null : fail(faults, path, `must be null, got ${kind(v)}`)
      case 'boolean':
        if (typeof v === 'boolean') return v
        if (strings && typeof v === 'string' && /^(true|false|1|0)$/i.test(v.trim())) return /^(true|1)$/i.test(v.trim())
        return fail(faults, path, `must be a boolean, got ${kind(v)}`)
      case 'int':
      case 'long': {
        if (logical === 'date') {
          if (typeof v === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(v.trim())) {
            const ms = Date.parse(`${v.trim()}T00:00:00Z`)
            if (!Number.isNaN(ms)) return ms / DAY_MS
            return fail(faults, path, `is not a valid date: "${v}"`)
          }
        }
        if (logical === 'timestamp-millis' && typeof v === 'string' && !/^-?\d+$/.test(v.trim())) {
          if (!/^\d{4}-\d{2}-\d{2}T/.test(v.trim())) return fail(faults, path, `must be an RFC 3339 timestamp or milliseconds, got "${v}"`)
          const ms = Date.parse(v.trim())
          return Number.isNaN(ms) ? fail(faults, path, `is not a valid RFC 3339 timestamp: "${v}"`) : ms
        }
        let n: number
        if (typeof v === 'number') n = v
        else if (strings && typeof v === 'string' && /^\s*-?\d+\s*$/.test(v)) n = Number(v)
        else return fail(faults, path, `must be an integer${logical === 'date' ? ' (days) or YYYY-MM-DD' : ''}, got ${kind(v)}${typeof v === 'string' ? ` "${v.slice(0, 40)}"` : ''}`)
        if (!Number.isInteger(n)) return fail(faults, path, `must be an integer, got ${n}`)
        if (t === 'int' && (n < INT_MIN || n > INT_MAX)) return fail(faults, path, `is out of the 32-bit integer range: ${n}`)
        if (t === 'long' && Math.abs(n) > LONG_MAX) return fail(faults, path, `is beyond ±2^53-1: ${n}`)
        return n
      }
      case 'float':
      case 'double': {
        if (typeof v === 'number' && Number.isFinite(v)) return v
        if (strings && typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v)
        return fail(faults, path, `must be a number, got ${kind(v)}`)
      }
      case 'string':
        if (typeof v === 'string') {
          if (logical === 'uuid' && !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(v)) return fail(faults, path, `must be a UUID, got "${v.slice(0, 40)}"`)
          return v
        }
        return fail(faults, path, `must be a string, got ${kind(v)}`)
      case 'bytes':
      case 'fixed': {
        if (logical === 'decimal') {
          const scale = ((s as { scale?: number }).scale ?? 0) as number
          const text = typeof v === 'number' ? String(v) : v
          if (typeof text !== 'string') return fail(faults, path, `must be a decimal string such as "12.50", got ${kind(v)}`)
          try {
            return decimalToBytes(text, scale)
          } catch (err) {
            return fail(faults, path, (err as Error).message)
          }
        }
        if (typeof v === 'string') return Buffer.from(v, 'base64')
        return fail(faults, path, `must be a base64 string, got ${kind(v)}`)
      }
      case 'enum': {
        const symbols = (s as unknown as { symbols: string[] }).symbols
        if (typeof v === 'string' && symbols.includes(v)) return v
        return fail(faults, path, `must be one of ${symbols.join(', ')}, got ${typeof v === 'string' ? `"${v.slice(0, 40)}"` : kind(v)}`)
      }
      case 'array': {
        if (!Array.isArray(v)) return fail(faults, path, `must be an array, got ${kind(v)}`)
        return v.map((x, i) => conv((s as unknown as { items: Schema }).items, x, `${path}/${i}`, faults))
      }
      case 'map': {
        if (v === null || typeof v !== 'object' || Array.isArray(v)) return fail(faults, path, `must be an object, got ${kind(v)}`)
        const out: Record<string, unknown> = {}
        for (const [k, x] of Object.entries(v)) out[k] = conv((s as unknown as { values: Schema }).values, x, `${path}/${esc(k)}`, faults)
        return out
      }
      case 'record':
      case 'error': {
        if (v === null || typeof v !== 'object' || Array.isArray(v)) return fail(faults, path, `must be an object, got ${kind(v)}`)
        const rf = recordFields(s as object)
        const obj = v as Record<string, unknown>
        const out: Record<string, unknown> = {}
        for (const f of rf.fields) {
          const x = obj[f.name]
          if (x === undefined) {
            if (f.hasDefault) out[f.name] = f.constantDefault ? f.defaultValue : defaultValue(f.type, f.rawDefault)
            else if (f.nullable) out[f.name] = null
            else faults.push({ path: path + f.suffix, message: 'is required' })
            continue
          }
          // The child path is a rope (cheap): it is flattened only when a fault names it.
          out[f.name] = conv(f.type, x, path + f.suffix, faults)
        }
        for (const k in obj) if (!rf.known.has(k)) faults.push({ path: `${path}/${esc(k)}`, message: 'is not a field of the schema' })
        return out
      }
      default:
        return fail(faults, path, `has an unsupported schema type ${t}`)
    }
  }

  // Avro defaults are JSON for the first union branch; the logical forms need converting too.
  const defaultValue = (s: Schema, d: unknown): unknown => {
    const r = resolve(s)
    const first = Array.isArray(r) ? r[0]! : r
    const f: FieldFault[] = []
    const out = conv(first, d, '', f)
    return f.length === 0 ? out : d
  }

  const top = resolve(root)
  const topFields = typeof top === 'object' && !Array.isArray(top) && top.type === 'record' ? (top.fields as Array<{ name: string; type: Schema; default?: unknown }>) : []
  return {
    fields: topFields.map((f) => f.name),
    required: topFields.filter((f) => !('default' in f) && !allowsNull(f.type)).map((f) => f.name),
    convert(value, basePath = '') {
      const faults: FieldFault[] = []
      const out = conv(root, value, basePath, faults)
      return faults.length === 0 ? { value: out, faults } : { value: undefined, faults }
    },
  }
}
