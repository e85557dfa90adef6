/**
 * JSON Schema documents read into the model Confluent's compatibility diff compares
 * (json-schema-diff.ts): everit's SchemaLoader, one model per schema node, references followed lazily
 * (a recursive schema refers to itself).
 */

export type S = Record<string, unknown>
export const isObj = (v: unknown): v is S => v !== null && typeof v === 'object' && !Array.isArray(v)

/** A JSON Schema document: the one registered, or one of its references (by reference name). */
export interface JsonDocuments {
  root: unknown
  /** Referenced schemas by reference name (the URI a `$ref` names), transitively. */
  refs: ReadonlyMap<string, unknown>
}

export type Criterion = 'allOf' | 'anyOf' | 'oneOf'
interface Base {
  raw: unknown
}
export type Model = Base &
  (
    | { kind: 'empty' }
    | { kind: 'false' }
    | { kind: 'ref'; ref: string; target: Model | null }
    | { kind: 'combined'; criterion: Criterion; subs: Model[]; synthetic: boolean }
    | { kind: 'not'; sub: Model }
    | { kind: 'const'; value: unknown }
    | { kind: 'enum'; values: unknown[] }
    | { kind: 'string'; n: S }
    | { kind: 'number'; n: S; integer: boolean }
    | { kind: 'boolean' }
    | { kind: 'null' }
    | {
        kind: 'object'
        n: S
        properties: Map<string, Model>
        patternProperties: Array<[RegExp, Model]>
        additional: boolean | Model
        propertyDeps: Map<string, string[]>
        schemaDeps: Map<string, Model>
        unevaluated: Model | null
      }
    | {
        kind: 'array'
        n: S
        all: Model | null
        tuple: Model[] | null
        additional: boolean | Model
        unevaluated: Model | null
      }
  )

const TYPE_KEYWORDS: Record<string, string[]> = {
  string: ['minLength', 'maxLength', 'pattern', 'format'],
  number: ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'multipleOf'],
  object: [
    'properties',
    'required',
    'additionalProperties',
    'patternProperties',
    'dependencies',
    'dependentRequired',
    'dependentSchemas',
    'minProperties',
    'maxProperties',
    'propertyNames',
    'unevaluatedProperties',
  ],
  array: [
    'items',
    'prefixItems',
    'additionalItems',
    'minItems',
    'maxItems',
    'uniqueItems',
    'contains',
    'unevaluatedItems',
  ],
}

/** Reads JSON Schema documents into everit's model, one model per schema node (so identity means "same schema"). */
export class Loader {
  private readonly cache = new WeakMap<object, Model>()
  private readonly empty: Model = { kind: 'empty', raw: true }
  private readonly falsy: Model = { kind: 'false', raw: false }
  private readonly draft2020: boolean
  constructor(private readonly docs: JsonDocuments) {
    this.draft2020 = isObj(docs.root) && typeof docs.root.$schema === 'string' && docs.root.$schema.includes('2020-12')
  }

  root(): Model {
    return this.load(this.docs.root, this.docs.root)
  }

  load(node: unknown, doc: unknown): Model {
    if (node === false) return this.falsy
    if (!isObj(node)) return this.empty
    const hit = this.cache.get(node)
    if (hit) return hit
    if (typeof node.$ref === 'string') {
      // A reference is resolved lazily: recursive schemas refer to themselves.
      const ref = node.$ref
      const resolve = (): Model | null => this.resolve(ref, doc)
      let resolved: Model | null | undefined
      const model = {
        kind: 'ref' as const,
        ref,
        raw: node,
        get target(): Model | null {
          if (resolved === undefined) resolved = resolve()
          return resolved
        },
      }
      this.cache.set(node, model)
      return model
    }
    const parts: Model[] = []
    const placeholder: Model = { kind: 'combined', criterion: 'allOf', subs: parts, synthetic: true, raw: node }
    this.cache.set(node, placeholder) // a cycle without $ref cannot occur in parsed JSON, but keep identity stable
    if (Array.isArray(node.enum)) parts.push({ kind: 'enum', values: node.enum as unknown[], raw: node })
    for (const c of ['allOf', 'anyOf', 'oneOf'] as const) {
      if (Array.isArray(node[c]))
        parts.push({
          kind: 'combined',
          criterion: c,
          subs: (node[c] as unknown[]).map((s) => this.load(s, doc)),
          synthetic: false,
          raw: node,
        })
    }
    if ('not' in node) parts.push({ kind: 'not', sub: this.load(node.not, doc), raw: node })
    if ('const' in node) parts.push({ kind: 'const', value: node.const, raw: node })
    const types = Array.isArray(node.type) ? (node.type as string[]) : typeof node.type === 'string' ? [node.type] : []
    if (types.length === 1) parts.push(this.typed(types[0]!, node, doc))
    else if (types.length > 1)
      parts.push({
        kind: 'combined',
        criterion: 'anyOf',
        subs: types.map((t) => this.typed(t, node, doc)),
        synthetic: true,
        raw: node,
      })
    else {
      // No `type`: everit builds the schemas the keywords imply, each accepting other types too.
      for (const t of ['array', 'object', 'number', 'string'])
        if (TYPE_KEYWORDS[t]!.some((k) => k in node)) parts.push(this.typed(t, node, doc))
    }
    const model: Model =
      parts.length === 0 ? { kind: 'empty', raw: node } : parts.length === 1 ? parts[0]! : placeholder
    this.cache.set(node, model)
    return model
  }

  private typed(type: string, n: S, doc: unknown): Model {
    const child = (v: unknown) => this.load(v, doc)
    switch (type) {
      case 'string':
        return { kind: 'string', n, raw: n }
      case 'integer':
      case 'number':
        return { kind: 'number', n, integer: type === 'integer', raw: n }
      case 'boolean':
        return { kind: 'boolean', raw: n }
      case 'null':
        return { kind: 'null', raw: n }
      case 'object': {
        const properties = new Map(
          Object.entries(isObj(n.properties) ? n.properties : {}).map(([k, v]) => [k, child(v)] as [string, Model]),
        )
        const patternProperties = Object.entries(isObj(n.patternProperties) ? n.patternProperties : {}).map(
          ([p, v]) => [safeRegExp(p), child(v)] as [RegExp, Model],
        )
        const propertyDeps = new Map<string, string[]>()
        const schemaDeps = new Map<string, Model>()
        for (const deps of [n.dependencies, n.dependentRequired, n.dependentSchemas]) {
          for (const [k, v] of Object.entries(isObj(deps) ? deps : {})) {
            if (Array.isArray(v)) propertyDeps.set(k, v as string[])
            else schemaDeps.set(k, child(v))
          }
        }
        const additional =
          typeof n.additionalProperties === 'boolean' || n.additionalProperties === undefined
            ? n.additionalProperties !== false
            : child(n.additionalProperties)
        return {
          kind: 'object',
          n,
          properties,
          patternProperties,
          additional,
          propertyDeps,
          schemaDeps,
          unevaluated: 'unevaluatedProperties' in n ? child(n.unevaluatedProperties) : null,
          raw: n,
        }
      }
      case 'array': {
        // Draft 2020-12 spells a tuple prefixItems and its additional items `items`; without
        // prefixItems, Confluent reads a boolean `items` of a 2020-12 schema as additionalItems and a
        // schema as the schema of all items (its test vectors).
        const prefixed = Array.isArray(n.prefixItems)
        const itemsAreAdditional = prefixed || (this.draft2020 && typeof n.items === 'boolean')
        const tupleRaw = prefixed ? n.prefixItems : Array.isArray(n.items) ? n.items : null
        const allRaw = !itemsAreAdditional && n.items !== undefined && !Array.isArray(n.items) ? n.items : undefined
        const addRaw = itemsAreAdditional ? n.items : n.additionalItems
        const additional = typeof addRaw === 'boolean' || addRaw === undefined ? addRaw !== false : child(addRaw)
        return {
          kind: 'array',
          n,
          raw: n,
          additional,
          all: allRaw === undefined ? null : child(allRaw),
          tuple: tupleRaw ? (tupleRaw as unknown[]).map(child) : null,
          unevaluated: 'unevaluatedItems' in n ? child(n.unevaluatedItems) : null,
        }
      }
      default:
        return { kind: 'empty', raw: n }
    }
  }

  /** A `$ref`: a JSON pointer into this document, or another subject's schema by reference name (with a pointer). */
  private resolve(ref: string, doc: unknown): Model | null {
    const hash = ref.indexOf('#')
    const base = hash < 0 ? ref : ref.slice(0, hash)
    const pointer = hash < 0 ? '' : ref.slice(hash + 1)
    let target: unknown
    if (base === '' || (isObj(doc) && doc.$id === base)) target = doc
    else if (this.docs.refs.has(base)) target = this.docs.refs.get(base)
    else return null
    const targetDoc = target
    for (const seg of pointer.split('/').slice(1)) {
      const key = decodeURIComponent(seg).replace(/~1/g, '/').replace(/~0/g, '~')
      target = isObj(target) || Array.isArray(target) ? (target as Record<string, unknown>)[key] : undefined
      if (target === undefined) return null
    }
    return this.load(target, targetDoc)
  }
}

function safeRegExp(p: string): RegExp {
  try {
    return new RegExp(p, 'u')
  } catch {
    return new RegExp(p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
  }
}

export const jsonEq = (a: unknown, b: unknown) => JSON.stringify(canon(a)) === JSON.stringify(canon(b))
const canon = (v: unknown): unknown =>
  Array.isArray(v)
    ? v.map(canon)
    : isObj(v)
      ? Object.fromEntries(
          Object.keys(v)
            .sort()
            .map((k) => [k, canon(v[k])]),
        )
      : v
export const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined)

/** Follows references to the schema they name (a cycle of references stops where it began). */
export function deref(m: Model): Model {
  const seen = new Set<Model>()
  while (m.kind === 'ref' && m.target && !seen.has(m)) {
    seen.add(m)
    m = m.target
  }
  return m
}
