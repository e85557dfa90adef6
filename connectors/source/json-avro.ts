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

/** The digits of s at [at, at + n) as a number, or -1 when one is not a digit. */
function digits(s: string, at: number, n: number): number {
  let x = 0
  for (let i = at; i < at + n; i++) {
    const c = s.charCodeAt(i) - 48
    if (c < 0 || c > 9) return -1
    x = x * 10 + c
  }
  return x
}

/** The value of a cell of 1 to 15 ASCII digits with an optional leading '-' (a CSV's usual integer), else undefined. */
function plainInteger(s: string): number | undefined {
  const n = s.length
  const neg = n > 0 && s.charCodeAt(0) === 45 /* - */
  const from = neg ? 1 : 0
  if (n === from || n - from > 15) return undefined
  let x = 0
  for (let i = from; i < n; i++) {
    const c = s.charCodeAt(i) - 48
    if (c < 0 || c > 9) return undefined
    x = x * 10 + c
  }
  return neg ? -x : x
}

/**
 * Milliseconds of the common form YYYY-MM-DDTHH:MM:SS[.s{1,3}]Z without Date.parse (which costs more
 * than the rest of an event's conversion), or undefined for any other form: the caller then uses
 * Date.parse, so both paths accept exactly the same strings with the same result (years below 100
 * go to Date.parse too: Date.UTC reads them as 19xx).
 */
function fastUtcMillis(s: string): number | undefined {
  const n = s.length
  if (
    n < 20 ||
    n > 24 ||
    s.charCodeAt(n - 1) !== 90 /* Z */ ||
    s[4] !== '-' ||
    s[7] !== '-' ||
    s[10] !== 'T' ||
    s[13] !== ':' ||
    s[16] !== ':'
  )
    return undefined
  const y = digits(s, 0, 4),
    mo = digits(s, 5, 2),
    d = digits(s, 8, 2),
    h = digits(s, 11, 2),
    mi = digits(s, 14, 2),
    sec = digits(s, 17, 2)
  if (y < 100 || mo < 1 || mo > 12 || d < 1 || d > 28 || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 59)
    return undefined
  let ms = 0
  if (n > 20) {
    if (s[19] !== '.' || n === 21) return undefined
    const f = digits(s, 20, n - 21)
    if (f < 0) return undefined
    ms = n === 22 ? f * 100 : n === 23 ? f * 10 : f
  }
  return Date.UTC(y, mo - 1, d, h, mi, sec, ms)
}

/** Days since the epoch of YYYY-MM-DD, the same way as Date.parse (undefined: not that form). */
function fastUtcDays(s: string): number | undefined {
  if (s.length !== 10 || s[4] !== '-' || s[7] !== '-') return undefined
  const y = digits(s, 0, 4),
    mo = digits(s, 5, 2),
    d = digits(s, 8, 2)
  if (y < 100 || mo < 1 || mo > 12 || d < 1 || d > 28) return undefined
  return Date.UTC(y, mo - 1, d) / DAY_MS
}

const kind = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v)

export interface ConverterOptions {
  /** Every scalar comes as a string cell (CSV). */
  strings?: boolean
  /**
   * The caller owns each top-level value it converts and does not use it afterwards (a row object
   * built for the conversion): its changed fields are written into it instead of into a copy. Nested
   * objects (which may be shared, e.g. a constant) are copied as usual.
   */
  inPlace?: boolean
}

export function createConverter(schemaText: string | object, opts: ConverterOptions = {}): Converter {
  const root = (typeof schemaText === 'string' ? JSON.parse(schemaText) : schemaText) as Schema
  const named = new Map<string, Schema>()
  const strings = opts.strings === true
  const inPlace = opts.inPlace === true

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

  /**
   * The schema is compiled once into one function per schema node (no type dispatch, name lookups
   * or per-field bookkeeping while converting: the ingest converts every event it accepts). A named
   * type refers to itself through a forwarder, so recursive schemas compile too.
   */
  type Node = (v: unknown, path: string, faults: FieldFault[], seg: string) => unknown
  const nodes = new Map<Schema, Node>()
  const compile = (schema: Schema): Node => {
    const s = resolve(schema)
    const known = nodes.get(s)
    if (known) return known
    // eslint-disable-next-line prefer-const -- the placeholder above refers to it before it is built (recursive types)
    let impl: Node | undefined
    nodes.set(s, (v, path, faults, seg) => impl!(v, path, faults, seg))
    impl = build(s)
    nodes.set(s, impl)
    return impl
  }

  const build = (s: Schema): Node => {
    if (Array.isArray(s)) {
      const nullable = s.some((x) => resolve(x) === 'null')
      const branches = s.filter((x) => resolve(x) !== 'null')
      const branchNodes = branches.map(compile)
      const isNull = (v: unknown) => v === null || v === undefined || (strings && v === '')
      const onNull = (path: string, seg: string, faults: FieldFault[]) =>
        nullable ? null : fail(faults, path + seg, 'must not be null')
      if (branchNodes.length === 1) {
        const only = branchNodes[0]!
        return (v, path, faults, seg) => (isNull(v) ? onNull(path, seg, faults) : only(v, path, faults, seg))
      }
      const names = branches.map(typeName).join(', ')
      return (v, path, faults, seg) => {
        if (isNull(v)) return onNull(path, seg, faults)
        for (const b of branchNodes) {
          const f: FieldFault[] = []
          const out = b(v, path, f, seg)
          if (f.length === 0) return out // avsc's default (wrapUnions: auto) takes unwrapped values
        }
        return fail(faults, path + seg, `matches none of ${names}`)
      }
    }
    if (typeof s === 'object' && typeof s.type === 'object') return compile(s.type as Schema)
    const t = typeof s === 'string' ? s : (s.type as string)
    const logical = typeof s === 'object' ? (s.logicalType as string | undefined) : undefined
    switch (t) {
      case 'null':
        return (v, path, faults, seg) =>
          v === undefined
            ? fail(faults, path + seg, 'is required')
            : v === null || (strings && v === '')
              ? null
              : fail(faults, path + seg, `must be null, got ${kind(v)}`)
      case 'boolean':
        return (v, path, faults, seg) => {
          if (typeof v === 'boolean') return v
          if (v === undefined) return fail(faults, path + seg, 'is required')
          if (strings && typeof v === 'string' && /^(true|false|1|0)$/i.test(v.trim()))
            return /^(true|1)$/i.test(v.trim())
          return fail(faults, path + seg, `must be a boolean, got ${kind(v)}`)
        }
      case 'int':
      case 'long': {
        const isInt = t === 'int'
        const range = (n: number, path: string, faults: FieldFault[], seg: string) => {
          if (!Number.isInteger(n)) return fail(faults, path + seg, `must be an integer, got ${n}`)
          if (isInt ? n < INT_MIN || n > INT_MAX : Math.abs(n) > LONG_MAX)
            return fail(
              faults,
              path + seg,
              isInt ? `is out of the 32-bit integer range: ${n}` : `is beyond ±2^53-1: ${n}`,
            )
          return n
        }
        const other = (v: unknown, path: string, faults: FieldFault[], seg: string) => {
          if (v === undefined) return fail(faults, path + seg, 'is required')
          if (typeof v === 'string') {
            const fast =
              logical === 'timestamp-millis' ? fastUtcMillis(v) : logical === 'date' ? fastUtcDays(v) : undefined
            if (fast !== undefined) return fast
          }
          if (logical === 'date' && typeof v === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(v.trim())) {
            const ms = Date.parse(`${v.trim()}T00:00:00Z`)
            if (!Number.isNaN(ms)) return ms / DAY_MS
            return fail(faults, path + seg, `is not a valid date: "${v}"`)
          }
          if (logical === 'timestamp-millis' && typeof v === 'string' && !/^-?\d+$/.test(v.trim())) {
            if (!/^\d{4}-\d{2}-\d{2}T/.test(v.trim()))
              return fail(faults, path + seg, `must be an RFC 3339 timestamp or milliseconds, got "${v}"`)
            const ms = Date.parse(v.trim())
            return Number.isNaN(ms) ? fail(faults, path + seg, `is not a valid RFC 3339 timestamp: "${v}"`) : ms
          }
          if (strings && typeof v === 'string') {
            const n = plainInteger(v)
            if (n !== undefined) return range(n, path, faults, seg)
            if (/^\s*-?\d+\s*$/.test(v)) return range(Number(v), path, faults, seg)
          }
          return fail(
            faults,
            path + seg,
            `must be an integer${logical === 'date' ? ' (days) or YYYY-MM-DD' : ''}, ` +
              `got ${kind(v)}${typeof v === 'string' ? ` "${v.slice(0, 40)}"` : ''}`,
          )
        }
        return (v, path, faults, seg) =>
          typeof v === 'number' ? range(v, path, faults, seg) : other(v, path, faults, seg)
      }
      case 'float':
      case 'double':
        return (v, path, faults, seg) => {
          if (typeof v === 'number' && Number.isFinite(v)) return v
          if (v === undefined) return fail(faults, path + seg, 'is required')
          if (strings && typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v)
          return fail(faults, path + seg, `must be a number, got ${kind(v)}`)
        }
      case 'string':
        if (logical === 'uuid') {
          return (v, path, faults, seg) => {
            if (typeof v === 'string')
              return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(v)
                ? v
                : fail(faults, path + seg, `must be a UUID, got "${v.slice(0, 40)}"`)
            return v === undefined
              ? fail(faults, path + seg, 'is required')
              : fail(faults, path + seg, `must be a string, got ${kind(v)}`)
          }
        }
        return (v, path, faults, seg) =>
          typeof v === 'string'
            ? v
            : v === undefined
              ? fail(faults, path + seg, 'is required')
              : fail(faults, path + seg, `must be a string, got ${kind(v)}`)
      case 'bytes':
      case 'fixed': {
        if (logical === 'decimal') {
          const scale = ((s as { scale?: number }).scale ?? 0) as number
          return (v, path, faults, seg) => {
            if (v === undefined) return fail(faults, path + seg, 'is required')
            const text = typeof v === 'number' ? String(v) : v
            if (typeof text !== 'string')
              return fail(faults, path + seg, `must be a decimal string such as "12.50", got ${kind(v)}`)
            try {
              return decimalToBytes(text, scale)
            } catch (err) {
              return fail(faults, path + seg, (err as Error).message)
            }
          }
        }
        return (v, path, faults, seg) =>
          typeof v === 'string'
            ? Buffer.from(v, 'base64')
            : v === undefined
              ? fail(faults, path + seg, 'is required')
              : fail(faults, path + seg, `must be a base64 string, got ${kind(v)}`)
      }
      case 'enum': {
        const symbols = (s as unknown as { symbols: string[] }).symbols
        const set = new Set(symbols)
        return (v, path, faults, seg) => {
          if (typeof v === 'string' && set.has(v)) return v
          if (v === undefined) return fail(faults, path + seg, 'is required')
          return fail(
            faults,
            path + seg,
            `must be one of ${symbols.join(', ')}, got ${typeof v === 'string' ? `"${v.slice(0, 40)}"` : kind(v)}`,
          )
        }
      }
      case 'array': {
        const items = compile((s as unknown as { items: Schema }).items)
        return (v, path, faults, seg) => {
          if (!Array.isArray(v))
            return v === undefined
              ? fail(faults, path + seg, 'is required')
              : fail(faults, path + seg, `must be an array, got ${kind(v)}`)
          // the input itself when no item changes (see the record node)
          let out: unknown[] | undefined
          const base = path + seg
          for (let i = 0; i < v.length; i++) {
            const x: unknown = v[i]
            const y = items(x, base, faults, `/${i}`)
            if (out === undefined) {
              if (y === x) continue
              out = v.slice(0, i)
            }
            out.push(y)
          }
          return out ?? v
        }
      }
      case 'map': {
        const values = compile((s as unknown as { values: Schema }).values)
        return (v, path, faults, seg) => {
          if (v === undefined) return fail(faults, path + seg, 'is required')
          if (v === null || typeof v !== 'object' || Array.isArray(v))
            return fail(faults, path + seg, `must be an object, got ${kind(v)}`)
          const out: Record<string, unknown> = {}
          const base = path + seg
          for (const [k, x] of Object.entries(v)) out[k] = values(x, base, faults, `/${esc(k)}`)
          return out
        }
      }
      case 'record':
      case 'error': {
        const defs = (s as unknown as { fields: Array<{ name: string; type: Schema; default?: unknown }> }).fields
        const known = new Set(defs.map((f) => f.name))
        // Per field, computed once: the node, the escaped path suffix, and what a missing value becomes.
        const fields = defs.map((f) => {
          const hasDefault = 'default' in f
          let converted: unknown
          let defaulted = false
          return {
            name: f.name,
            suffix: `/${esc(f.name)}`,
            node: compile(f.type),
            hasDefault,
            nullable: allowsNull(f.type),
            /** The default, converted on first use (a constant one is shared, an object one is fresh each time). */
            missing(): unknown {
              if (!defaulted) {
                converted = defaultValue(f.type, f.default)
                defaulted = converted === null || typeof converted !== 'object'
                return converted
              }
              return converted
            },
          }
        })
        return (v, path, faults, seg) => {
          if (v === undefined) return fail(faults, path + seg, 'is required')
          if (v === null || typeof v !== 'object' || Array.isArray(v))
            return fail(faults, path + seg, `must be an object, got ${kind(v)}`)
          const obj = v as Record<string, unknown>
          // The fields' own paths are base + suffix, concatenated only when a fault names one.
          const base = path + seg
          // The input object itself is the value when no field changes (no default filled in, no
          // logical form converted, the common case of a JSON event): nothing is copied, and a batch
          // holds one object per event instead of two. The copy starts at the first changed field.
          let out: Record<string, unknown> | undefined
          let present = 0
          // counted before the fields are read (an in-place conversion adds the defaulted ones)
          let keys = 0
          for (const k in obj) if (Object.hasOwn(obj, k)) keys++
          for (let i = 0; i < fields.length; i++) {
            const f = fields[i]!
            const x = obj[f.name]
            let y: unknown
            if (x === undefined) {
              if (f.hasDefault) y = f.missing()
              else if (f.nullable) y = null
              else {
                faults.push({ path: base + f.suffix, message: 'is required' })
                continue
              }
            } else {
              present++
              y = f.node(x, base, faults, f.suffix)
            }
            if (out === undefined) {
              if (y === x) continue
              if (inPlace && seg === '')
                out = obj // the top-level value only (seg '' is the root call)
              else {
                out = {}
                for (let j = 0; j < i; j++) out[fields[j]!.name] = obj[fields[j]!.name]
              }
            }
            out[f.name] = y
          }
          // Unknown fields: only when the object held more keys than the fields it matched.
          if (keys !== present)
            for (const k in obj)
              if (Object.hasOwn(obj, k) && !known.has(k))
                faults.push({ path: `${base}/${esc(k)}`, message: 'is not a field of the schema' })
          return out ?? obj
        }
      }
      default:
        return (_v, path, faults, seg) => fail(faults, path + seg, `has an unsupported schema type ${t}`)
    }
  }

  // Avro defaults are JSON for the first union branch; the logical forms need converting too.
  const defaultValue = (s: Schema, d: unknown): unknown => {
    const r = resolve(s)
    const first = Array.isArray(r) ? r[0]! : r
    const f: FieldFault[] = []
    // a fresh copy of an object default each time: the nodes return unchanged input as it is, and a
    // value handed to one event must not be the one the next event gets
    const fresh = d !== null && typeof d === 'object' ? JSON.parse(JSON.stringify(d)) : d
    const out = compile(first)(fresh, '', f, '')
    return f.length === 0 ? out : fresh
  }

  const top = resolve(root)
  const topFields =
    typeof top === 'object' && !Array.isArray(top) && top.type === 'record'
      ? (top.fields as Array<{ name: string; type: Schema; default?: unknown }>)
      : []
  const rootNode = compile(root)
  return {
    fields: topFields.map((f) => f.name),
    required: topFields.filter((f) => !('default' in f) && !allowsNull(f.type)).map((f) => f.name),
    convert(value, basePath = '') {
      const faults: FieldFault[] = []
      const out = rootNode(value, basePath, faults, '')
      return faults.length === 0 ? { value: out, faults } : { value: undefined, faults }
    },
  }
}
