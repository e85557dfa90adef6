/**
 * The Avro schema of a projected value: the grants and the subscription keep some field paths
 * (connectors/sink/entitlement.ts `project`), and a partner topic carries the value in Avro, so its
 * schema is the source schema with the same paths kept, in the same way:
 *
 *   - a record keeps the listed fields, each projected below (a path through an array projects each
 *     element, through a union each branch);
 *   - a field the projection leaves nothing of (a scalar a path goes below) is dropped, as `project` drops it;
 *   - a union with null gets null first and a null default, since `project` leaves a null (or absent)
 *     value out of the object and the writer must then fill it in;
 *   - a named type projected differently at two places is emitted under a second name (`<name>_2`),
 *     an identical projection is referenced by name.
 *
 * Works on the schema JSON as registered (docs, defaults and logical types kept), not avsc's export,
 * which drops attributes it does not model (logicalType uuid, enum defaults).
 */

import { trieOf, type Trie } from '../../connectors/sink/entitlement.ts'

type Json = string | number | boolean | null | Json[] | { [k: string]: Json }
type Obj = { [k: string]: Json }

const PRIMITIVES = new Set(['null', 'boolean', 'int', 'long', 'float', 'double', 'bytes', 'string'])

const signature = (t: Trie): string =>
  t.whole
    ? '*'
    : `{${[...t.children.keys()]
        .sort()
        .map((k) => `${k}:${signature(t.children.get(k)!)}`)
        .join(',')}}`

const isObj = (j: Json): j is Obj => typeof j === 'object' && j !== null && !Array.isArray(j)

function fullName(name: string, namespace: string | undefined): string {
  return name.includes('.') || !namespace ? name : `${namespace}.${name}`
}

/** Named type definitions (record, enum, fixed) by full name, each with the namespace its members inherit. */
function collectNamed(
  schema: Json,
  namespace: string | undefined,
  out: Map<string, { def: Obj; namespace: string | undefined }>,
): void {
  if (Array.isArray(schema)) {
    for (const s of schema) collectNamed(s, namespace, out)
    return
  }
  if (!isObj(schema)) return
  const t = schema.type
  if (t === 'record' || t === 'error' || t === 'enum' || t === 'fixed') {
    const ns = typeof schema.namespace === 'string' ? schema.namespace : namespace
    const full = fullName(String(schema.name), ns)
    const inner = full.includes('.') ? full.slice(0, full.lastIndexOf('.')) : undefined
    out.set(full, { def: schema, namespace: inner })
    if (Array.isArray(schema.fields)) for (const f of schema.fields) if (isObj(f)) collectNamed(f.type!, inner, out)
    return
  }
  if (t === 'array') collectNamed(schema.items!, namespace, out)
  else if (t === 'map') collectNamed(schema.values!, namespace, out)
  else if (t !== undefined && (isObj(t) || Array.isArray(t))) collectNamed(t, namespace, out)
}

class Projector {
  readonly #named = new Map<string, { def: Obj; namespace: string | undefined }>()
  /** Full name → signatures emitted under it (the first under the name itself). */
  readonly #emitted = new Map<string, Map<string, string>>()

  constructor(root: Json) {
    collectNamed(root, undefined, this.#named)
  }

  /** The projected schema, or undefined when nothing of it is kept. */
  project(schema: Json, trie: Trie, namespace: string | undefined): Json | undefined {
    if (typeof schema === 'string') {
      if (PRIMITIVES.has(schema)) return trie.whole ? schema : undefined
      const full = this.#named.has(fullName(schema, namespace)) ? fullName(schema, namespace) : schema
      const named = this.#named.get(full)
      if (!named) return trie.whole ? full : undefined
      return this.#namedType(full, named.def, named.namespace, trie)
    }
    if (Array.isArray(schema)) return this.#union(schema, trie, namespace)
    if (!isObj(schema)) return undefined
    const t = schema.type
    if (t === 'record' || t === 'error' || t === 'enum' || t === 'fixed') {
      const ns = typeof schema.namespace === 'string' ? schema.namespace : namespace
      const full = fullName(String(schema.name), ns)
      return this.#namedType(full, schema, full.includes('.') ? full.slice(0, full.lastIndexOf('.')) : undefined, trie)
    }
    if (t === 'array') {
      const items = this.project(schema.items!, trie, namespace)
      return items === undefined ? undefined : { ...schema, items }
    }
    if (t === 'map') {
      // `project` keeps the map entries named by the paths, whole below them; deeper paths into a
      // map's values are not projected (the values keep their schema)
      return trie.whole || [...trie.children.values()].every((c) => c.whole) ? schema : undefined
    }
    if (typeof t === 'string' && PRIMITIVES.has(t)) return trie.whole ? schema : undefined
    return this.project(t!, trie, namespace)
  }

  #union(branches: Json[], trie: Trie, namespace: string | undefined): Json | undefined {
    if (trie.whole) return branches.map((b) => this.#whole(b, namespace))
    const kept: Json[] = []
    let hasNull = false
    for (const b of branches) {
      if (b === 'null' || (isObj(b) && b.type === 'null')) {
        hasNull = true
        continue
      }
      const p = this.project(b, trie, namespace)
      if (p !== undefined) kept.push(p)
    }
    if (kept.length === 0) return undefined
    return hasNull ? ['null', ...kept] : kept.length === 1 ? kept[0]! : kept
  }

  /** A schema kept whole: named types in it still go through the emitted-name bookkeeping. */
  #whole(schema: Json, namespace: string | undefined): Json {
    return this.project(schema, { whole: true, children: new Map() }, namespace)!
  }

  #namedType(full: string, def: Obj, namespace: string | undefined, trie: Trie): Json | undefined {
    const sig = signature(trie)
    let bySig = this.#emitted.get(full)
    const known = bySig?.get(sig)
    if (known !== undefined) return known
    let body: Obj | undefined
    if (def.type === 'record' || def.type === 'error') {
      const fields: Json[] = []
      for (const f of (def.fields as Json[]) ?? []) {
        if (!isObj(f)) continue
        const name = String(f.name)
        const child = trie.whole ? trie : trie.children.get(name)
        if (!child) continue
        const type = this.project(f.type!, child, namespace)
        if (type === undefined) continue
        const field: Obj = { ...f, type }
        if (!child.whole) {
          // a default of the full type may not fit the projected one; a nullable field gets null (see above)
          delete field.default
          if (Array.isArray(type) && type[0] === 'null') field.default = null
        }
        fields.push(field)
      }
      if (fields.length === 0 && !trie.whole) return undefined
      body = { ...def, fields }
    } else {
      if (!trie.whole) return undefined
      body = { ...def }
    }
    bySig ??= new Map()
    this.#emitted.set(full, bySig)
    const emittedName = bySig.size === 0 ? full : `${full}_${bySig.size + 1}`
    bySig.set(sig, emittedName)
    delete body.namespace
    body.name = emittedName
    return body
  }
}

/**
 * The schema of values projected to `paths` (undefined: every field, the schema itself). The result
 * is a new JSON schema; named types carry full names.
 */
export function projectSchema(schema: Json, paths: readonly string[] | undefined): Json {
  if (paths === undefined) return schema
  const out = new Projector(schema).project(schema, trieOf(paths), undefined)
  // `project` of a record with no kept field is an empty object: the empty record of the same name
  if (out === undefined && isObj(schema) && schema.type === 'record') return { ...schema, fields: [] }
  return out ?? schema
}
