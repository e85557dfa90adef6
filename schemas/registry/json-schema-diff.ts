/**
 * JSON Schema compatibility as Confluent's registry defines it: a port of json-schema-provider's
 * `io.confluent.kafka.schemaregistry.json.diff` package (SchemaDiff, CombinedSchemaDiff, NotSchemaDiff,
 * ObjectSchemaDiff, ArraySchemaDiff, String/Number/Enum/ConstSchemaDiff, Context), read from
 * confluentinc/schema-registry master (8.x).
 *
 * Confluent diffs the everit library's schema model, not the raw JSON, so a schema is first read the
 * way everit's SchemaLoader does (json-schema-model.ts: `true`/`{}` are the empty schema, `false` the
 * false schema, `$ref` a reference followed to local `#/definitions/...`/`#/$defs/...` pointers and
 * other subjects' schemas by reference name, `type: [a, b]` an anyOf of one schema per type, several
 * of enum / allOf / anyOf / oneOf / not / const / a type an allOf of each: everit's "synthetic"
 * allOf). `compare(original, update)` then lists every Difference, each with its JSON path;
 * the change is compatible when all are in COMPATIBLE_CHANGES (Confluent's STRICT set, its default
 * policy). BACKWARD compares original = the earlier version with update = the new schema.
 */
import { deref, isObj, jsonEq, Loader, num, type JsonDocuments, type Model, type S } from './json-schema-model.ts'
import { COMPATIBLE_CHANGES, Context, type Difference, type Pair } from './json-schema-context.ts'

export { COMPATIBLE_CHANGES } from './json-schema-context.ts'
export type { Difference } from './json-schema-context.ts'
export type { JsonDocuments } from './json-schema-model.ts'

/**
 * Every difference from `original` to `update` (Confluent's SchemaDiff.compare), iterated to a
 * fixpoint as Confluent does so that a recursive cycle assumed compatible is re-checked once it is
 * known incompatible.
 */
export function jsonSchemaDiff(original: JsonDocuments, update: JsonDocuments): Difference[] {
  const o = new Loader(original).root()
  const u = new Loader(update).root()
  let seed = new Map<Pair, Difference[]>()
  for (;;) {
    const ctx = new Context({
      memo: new Map(),
      inProgress: new Set(),
      seed,
      optimism: false,
      ids: new WeakMap(),
      next: 0,
    })
    compare(ctx, o, u)
    const bad = ctx.incompatiblePairs()
    if (!ctx.optimism || sameKeys(bad, seed)) return ctx.diffs
    seed = bad
  }
}

const sameKeys = (a: Map<string, unknown>, b: Map<string, unknown>) =>
  a.size === b.size && [...a.keys()].every((k) => b.has(k))

/** The incompatible differences, as "path: TYPE" (empty: compatible). */
export function jsonIncompatibilities(original: JsonDocuments, update: JsonDocuments): string[] {
  return jsonSchemaDiff(original, update)
    .filter((d) => !COMPATIBLE_CHANGES.has(d.type))
    .map((d) => `${d.path}: ${d.type}`)
}

function compare(ctx: Context, original: Model | null | undefined, update: Model | null | undefined): void {
  if (!original && !update) return
  if (!original) return ctx.add('SCHEMA_ADDED')
  if (!update) return ctx.add('SCHEMA_REMOVED')
  const o = deref(original)
  const u = deref(update)
  if (o.kind === 'ref' || u.kind === 'ref') {
    // An unresolvable $ref (Confluent refuses the schema): equal references are the same type.
    if (!(o.kind === 'ref' && u.kind === 'ref' && o.ref === u.ref)) ctx.add('TYPE_CHANGED')
    return
  }
  ctx.memoized(o, u, (c) => compareTypes(c, o, u))
}

/** Compares in a sub-context and, when that is compatible, keeps its differences: whether it was. */
function compatibly(ctx: Context, o: Model | undefined, u: Model | undefined): boolean {
  const sub = ctx.sub()
  compare(sub, o, u)
  if (!sub.compatible()) return false
  ctx.addAll(sub.diffs)
  return true
}

function compareTypes(ctx: Context, o: Model, u: Model): void {
  if (o.kind !== 'combined' && u.kind === 'combined') {
    if (u.subs.length === 1) {
      if (compatibly(ctx, o, u.subs[0])) return
    } else if (u.criterion === 'anyOf' || u.criterion === 'oneOf') {
      if (u.subs.some((s) => compatibly(ctx, o, s))) return ctx.add('SUM_TYPE_EXTENDED')
    }
  } else if (o.kind === 'combined' && u.kind !== 'combined') {
    if (o.subs.length === 1) {
      if (compatibly(ctx, o.subs[0], u)) return
    } else if (o.criterion === 'allOf') {
      if (o.subs.some((s) => compatibly(ctx, s, u))) return ctx.add('PRODUCT_TYPE_NARROWED')
    }
  }
  if (o.kind !== u.kind) {
    if (o.kind === 'false' || u.kind === 'empty') return
    const connect = (m: Model) => (isObj(m.raw) ? m.raw['connect.type'] : undefined)
    // Confluent treats two types that both carry connect.type "bytes" as the same (its decimal fix).
    if (connect(o) === 'bytes' && connect(u) === 'bytes') return
    return ctx.add('TYPE_CHANGED')
  }
  if (isObj(o.raw) && isObj(u.raw) && !o.kind.startsWith('combined')) {
    for (const [k, t] of [
      ['$id', 'ID_CHANGED'],
      ['title', 'TITLE_CHANGED'],
      ['description', 'DESCRIPTION_CHANGED'],
      ['default', 'DEFAULT_CHANGED'],
    ] as const) {
      if (!jsonEq(o.raw[k], u.raw[k])) ctx.add(t)
    }
  }
  switch (o.kind) {
    case 'string':
      return stringDiff(ctx, o.n, (u as typeof o).n)
    case 'number':
      return numberDiff(ctx, o, u as typeof o)
    case 'const':
      if (!jsonEq(o.value, (u as typeof o).value)) ctx.add('ENUM_ARRAY_CHANGED', 'const')
      return
    case 'enum':
      return enumDiff(ctx, o.values, (u as typeof o).values)
    case 'combined':
      return combinedDiff(ctx, o, u as typeof o)
    case 'not':
      return ctx.at('not', () => {
        // Reversed: `not A` to `not B` narrows when B accepts what A did.
        const sub = ctx.sub()
        compare(sub, (u as typeof o).sub, o.sub)
        ctx.add(sub.compatible() ? 'NOT_TYPE_NARROWED' : 'NOT_TYPE_EXTENDED')
      })
    case 'object':
      return objectDiff(ctx, o, u as typeof o)
    case 'array':
      return arrayDiff(ctx, o, u as typeof o)
  }
}

/** Added / removed / increased / decreased, as each bound keyword is named. */
function bound(ctx: Context, keyword: string, o: number | undefined, u: number | undefined): void {
  if (o === u) return
  const name = keyword.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()
  if (o === undefined) ctx.add(`${name}_ADDED`, keyword)
  else if (u === undefined) ctx.add(`${name}_REMOVED`, keyword)
  else ctx.add(`${name}_${o < u ? 'INCREASED' : 'DECREASED'}`, keyword)
}

function stringDiff(ctx: Context, o: S, u: S): void {
  bound(ctx, 'maxLength', num(o.maxLength), num(u.maxLength))
  bound(ctx, 'minLength', num(o.minLength), num(u.minLength))
  const op = typeof o.pattern === 'string' ? o.pattern : undefined
  const up = typeof u.pattern === 'string' ? u.pattern : undefined
  if (op === undefined && up !== undefined) ctx.add('PATTERN_ADDED', 'pattern')
  else if (op !== undefined && up === undefined) ctx.add('PATTERN_REMOVED', 'pattern')
  else if (op !== up) ctx.add('PATTERN_CHANGED', 'pattern')
}

function numberDiff(ctx: Context, o: { n: S; integer: boolean }, u: { n: S; integer: boolean }): void {
  bound(ctx, 'maximum', num(o.n.maximum), num(u.n.maximum))
  bound(ctx, 'minimum', num(o.n.minimum), num(u.n.minimum))
  bound(ctx, 'exclusiveMaximum', num(o.n.exclusiveMaximum), num(u.n.exclusiveMaximum))
  bound(ctx, 'exclusiveMinimum', num(o.n.exclusiveMinimum), num(u.n.exclusiveMinimum))
  const om = num(o.n.multipleOf)
  const um = num(u.n.multipleOf)
  if (om !== um) {
    // multiples compared exactly, as Confluent's BigDecimal remainder (0.1 * 3 is not 0.3 in floats)
    const divides = (a: number, b: number) => a !== 0 && Number.isInteger(Number((b / a).toPrecision(12)))
    if (om === undefined) ctx.add('MULTIPLE_OF_ADDED', 'multipleOf')
    else if (um === undefined) ctx.add('MULTIPLE_OF_REMOVED', 'multipleOf')
    else if (divides(om, um)) ctx.add('MULTIPLE_OF_EXPANDED', 'multipleOf')
    else if (divides(um, om)) ctx.add('MULTIPLE_OF_REDUCED', 'multipleOf')
    else ctx.add('MULTIPLE_OF_CHANGED', 'multipleOf')
  }
  if (o.integer !== u.integer) ctx.add(o.integer ? 'TYPE_EXTENDED' : 'TYPE_NARROWED')
}

function enumDiff(ctx: Context, o: unknown[], u: unknown[]): void {
  const has = (list: unknown[], x: unknown) => list.some((y) => jsonEq(x, y))
  const uHasAll = o.every((x) => has(u, x))
  const oHasAll = u.every((x) => has(o, x))
  if (uHasAll && oHasAll) return
  ctx.add(uHasAll ? 'ENUM_ARRAY_EXTENDED' : oHasAll ? 'ENUM_ARRAY_NARROWED' : 'ENUM_ARRAY_CHANGED', 'enum')
}

function combinedDiff(
  ctx: Context,
  o: Extract<Model, { kind: 'combined' }>,
  u: Extract<Model, { kind: 'combined' }>,
): void {
  // compareCriteria
  if (o.criterion !== u.criterion) {
    const single = (m: typeof o) => m.subs.length === 1
    const extended =
      u.criterion === 'anyOf' ||
      (single(o) && single(u)) ||
      (single(o) && u.criterion === 'oneOf') ||
      (single(u) && o.criterion === 'allOf')
    ctx.add(extended ? 'COMBINED_TYPE_EXTENDED' : 'COMBINED_TYPE_CHANGED')
    if (!extended) return
  }
  // Duplicate subschemas collapse (Confluent puts them in a set of JsonSchema, equal by their text).
  const dedupe = (subs: Model[]) =>
    subs.filter((s, i) => subs.findIndex((t) => jsonEq(t.raw, s.raw) && t.kind === s.kind) === i)
  const os = dedupe(o.subs)
  const us = dedupe(u.subs)
  if (os.length < us.length) ctx.add(u.criterion === 'allOf' ? 'PRODUCT_TYPE_EXTENDED' : 'SUM_TYPE_EXTENDED')
  else if (os.length > us.length) ctx.add(o.criterion === 'allOf' ? 'PRODUCT_TYPE_NARROWED' : 'SUM_TYPE_NARROWED')
  // Compatible pairs (original subschema, update subschema), then a maximum matching between them.
  const edges: Array<Array<Difference[] | null>> = os.map((s, i) =>
    ctx.at(`${o.criterion}/${i}`, () =>
      us.map((t) => {
        const sub = ctx.sub()
        compare(sub, s, t)
        return sub.compatible() ? sub.diffs : null
      }),
    ),
  )
  const matchOfUpdate: number[] = us.map(() => -1)
  const augment = (i: number, seen: boolean[]): boolean => {
    for (let j = 0; j < us.length; j++) {
      if (!edges[i]![j] || seen[j]) continue
      seen[j] = true
      if (matchOfUpdate[j] === -1 || augment(matchOfUpdate[j]!, seen)) {
        matchOfUpdate[j] = i
        return true
      }
    }
    return false
  }
  let matched = 0
  for (let i = 0; i < os.length; i++)
    if (
      augment(
        i,
        us.map(() => false),
      )
    )
      matched++
  matchOfUpdate.forEach((i, j) => i >= 0 && ctx.addAll(edges[i]![j]!))
  if (matched < Math.min(os.length, us.length)) ctx.add('COMBINED_TYPE_SUBSCHEMAS_CHANGED')
}

type ObjectModel = Extract<Model, { kind: 'object' }>

/** Open: additionalProperties absent or true, no patternProperties, unevaluatedProperties absent or true. */
function isOpenObject(m: ObjectModel): boolean {
  return (
    m.additional === true &&
    m.patternProperties.length === 0 &&
    (m.unevaluated === null || m.unevaluated.kind === 'empty')
  )
}

/** The schema a partially open content model gives a property it does not name (patternProperties first). */
function partialObject(m: ObjectModel, key: string): Model | null {
  for (const [re, s] of m.patternProperties) if (re.test(key)) return s
  if (typeof m.additional === 'object') return m.additional
  if (m.additional === true && m.unevaluated && m.unevaluated.kind !== 'false' && m.unevaluated.kind !== 'empty')
    return m.unevaluated
  return null
}

/**
 * A property or item one side no longer names, against the schema the other side's partially open content
 * model gives it: the comparison's differences, then whether the model covers it.
 */
function partiallyOpen(
  ctx: Context,
  change: 'PROPERTY_REMOVED' | 'PROPERTY_ADDED' | 'ITEM_REMOVED' | 'ITEM_ADDED',
  o: Model | undefined,
  u: Model | undefined,
): void {
  const sub = ctx.sub()
  compare(sub, o, u)
  ctx.addAll(sub.diffs)
  ctx.add(
    sub.compatible()
      ? `${change}_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL`
      : `${change}_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL`,
  )
}

const hasDefault = (m: Model | undefined) => isObj(m?.raw) && 'default' in m.raw

/** A property the original does not name, added to an open or not open content model. */
function propertyAdded(ctx: Context, model: 'OPEN' | 'UNOPEN', required: boolean, added: Model): void {
  if (!required) return ctx.add(`OPTIONAL_PROPERTY_ADDED_TO_${model}_CONTENT_MODEL`)
  ctx.add(
    hasDefault(added)
      ? `REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_${model}_CONTENT_MODEL`
      : `REQUIRED_PROPERTY_ADDED_TO_${model}_CONTENT_MODEL`,
  )
}

function objectDiff(ctx: Context, o: ObjectModel, u: ObjectModel): void {
  const req = (m: ObjectModel) => new Set(Array.isArray(m.n.required) ? (m.n.required as string[]) : [])
  const oReq = req(o)
  const uReq = req(u)
  ctx.at('required', () => {
    for (const key of o.properties.keys()) {
      if (!u.properties.has(key)) continue
      if (oReq.has(key) && !uReq.has(key)) ctx.add('REQUIRED_ATTRIBUTE_REMOVED', key)
      else if (!oReq.has(key) && uReq.has(key))
        ctx.add(
          hasDefault(u.properties.get(key)) ? 'REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED' : 'REQUIRED_ATTRIBUTE_ADDED',
          key,
        )
    }
  })
  ctx.at('properties', () => {
    for (const key of new Set([...o.properties.keys(), ...u.properties.keys()])) {
      ctx.at(key, () => {
        const os = o.properties.get(key)
        const us = u.properties.get(key)
        if (!us) {
          if (isOpenObject(u)) return ctx.add('PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL')
          const partial = partialObject(u, key)
          if (partial) return partiallyOpen(ctx, 'PROPERTY_REMOVED', os, partial)
          return ctx.add(
            os!.kind === 'false'
              ? 'PROPERTY_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL'
              : 'PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL',
          )
        }
        if (!os) {
          if (isOpenObject(o)) {
            if (us.kind === 'empty') return ctx.add('PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL')
            return propertyAdded(ctx, 'OPEN', uReq.has(key), us)
          }
          const partial = partialObject(o, key)
          if (partial) partiallyOpen(ctx, 'PROPERTY_ADDED', partial, us)
          return propertyAdded(ctx, 'UNOPEN', uReq.has(key), us)
        }
        compare(ctx, os, us)
      })
    }
  })
  ctx.at('dependencies', () => {
    for (const key of new Set([...o.propertyDeps.keys(), ...u.propertyDeps.keys()])) {
      const od = o.propertyDeps.get(key)
      const ud = u.propertyDeps.get(key)
      if (!ud) ctx.add('DEPENDENCY_ARRAY_REMOVED', key)
      else if (!od) ctx.add('DEPENDENCY_ARRAY_ADDED', key)
      else {
        const uAll = od.every((x) => ud.includes(x))
        const oAll = ud.every((x) => od.includes(x))
        if (!(uAll && oAll))
          ctx.add(
            uAll ? 'DEPENDENCY_ARRAY_EXTENDED' : oAll ? 'DEPENDENCY_ARRAY_NARROWED' : 'DEPENDENCY_ARRAY_CHANGED',
            key,
          )
      }
    }
    for (const key of new Set([...o.schemaDeps.keys(), ...u.schemaDeps.keys()])) {
      const os = o.schemaDeps.get(key)
      const us = u.schemaDeps.get(key)
      if (!us) ctx.add('DEPENDENCY_SCHEMA_REMOVED', key)
      else if (!os) ctx.add('DEPENDENCY_SCHEMA_ADDED', key)
      else ctx.at(key, () => compare(ctx, os, us))
    }
  })
  ctx.at('additionalProperties', () => additionalDiff(ctx, 'PROPERTIES', o.additional, u.additional))
  unevaluatedDiff(ctx, 'unevaluatedProperties', o.unevaluated, u.unevaluated)
  bound(ctx, 'maxProperties', num(o.n.maxProperties), num(u.n.maxProperties))
  bound(ctx, 'minProperties', num(o.n.minProperties), num(u.n.minProperties))
}

/** additionalProperties / additionalItems: permitted or not, then their schemas. */
function additionalDiff(ctx: Context, what: 'PROPERTIES' | 'ITEMS', o: boolean | Model, u: boolean | Model): void {
  const permits = (x: boolean | Model) => x !== false
  if (permits(o) !== permits(u)) ctx.add(`ADDITIONAL_${what}_${permits(u) ? 'ADDED' : 'REMOVED'}`)
  else if (o === true && typeof u === 'object') ctx.add(`ADDITIONAL_${what}_NARROWED`)
  else if (u === true && typeof o === 'object') ctx.add(`ADDITIONAL_${what}_EXTENDED`)
  else if (typeof o === 'object' && typeof u === 'object') compare(ctx, o, u)
}

function unevaluatedDiff(
  ctx: Context,
  keyword: 'unevaluatedProperties' | 'unevaluatedItems',
  o: Model | null,
  u: Model | null,
): void {
  if (!o && !u) return
  const name = keyword === 'unevaluatedProperties' ? 'UNEVALUATED_PROPERTIES' : 'UNEVALUATED_ITEMS'
  ctx.at(keyword, () => {
    if (!o) ctx.add(`${name}_${u!.kind === 'false' ? 'REMOVED' : 'NARROWED'}`)
    else if (!u) ctx.add(`${name}_${o.kind === 'false' ? 'ADDED' : 'EXTENDED'}`)
    else if (o.kind === 'false' && u.kind !== 'false') ctx.add(`${name}_ADDED`)
    else if (o.kind !== 'false' && u.kind === 'false') ctx.add(`${name}_REMOVED`)
    else if (o.kind === 'empty' && u.kind !== 'empty') ctx.add(`${name}_NARROWED`)
    else if (o.kind !== 'empty' && u.kind === 'empty') ctx.add(`${name}_EXTENDED`)
    else compare(ctx, o, u)
  })
}

type ArrayModel = Extract<Model, { kind: 'array' }>

function isOpenArray(m: ArrayModel): boolean {
  return m.additional === true && (m.unevaluated === null || m.unevaluated.kind === 'empty')
}

function partialArray(m: ArrayModel): Model | null {
  if (typeof m.additional === 'object') return m.additional
  if (m.additional === true && m.unevaluated && m.unevaluated.kind !== 'false' && m.unevaluated.kind !== 'empty')
    return m.unevaluated
  return null
}

function arrayDiff(ctx: Context, o: ArrayModel, u: ArrayModel): void {
  ctx.at('items', () => compare(ctx, o.all, u.all))
  const ot = o.tuple ?? []
  const ut = u.tuple ?? []
  for (let i = 0; i < Math.max(ot.length, ut.length); i++) {
    ctx.at(`items/${i}`, () => {
      if (i < ot.length && i < ut.length) return compare(ctx, ot[i], ut[i])
      if (i < ot.length) {
        // an item position the update no longer names
        if (isOpenArray(u)) return ctx.add('ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL')
        const partial = partialArray(u)
        if (partial) return partiallyOpen(ctx, 'ITEM_REMOVED', ot[i], partial)
        return ctx.add(
          ot[i]!.kind === 'false'
            ? 'ITEM_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL'
            : 'ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL',
        )
      }
      if (isOpenArray(o))
        return ctx.add(
          ut[i]!.kind === 'empty'
            ? 'ITEM_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL'
            : 'ITEM_ADDED_TO_OPEN_CONTENT_MODEL',
        )
      const partial = partialArray(o)
      if (partial) return partiallyOpen(ctx, 'ITEM_ADDED', partial, ut[i])
      ctx.add('ITEM_ADDED_TO_CLOSED_CONTENT_MODEL')
    })
  }
  ctx.at('additionalItems', () => additionalDiff(ctx, 'ITEMS', o.additional, u.additional))
  unevaluatedDiff(ctx, 'unevaluatedItems', o.unevaluated, u.unevaluated)
  bound(ctx, 'maxItems', num(o.n.maxItems), num(u.n.maxItems))
  bound(ctx, 'minItems', num(o.n.minItems), num(u.n.minItems))
  if ((o.n.uniqueItems === true) !== (u.n.uniqueItems === true))
    ctx.add(o.n.uniqueItems === true ? 'UNIQUE_ITEMS_REMOVED' : 'UNIQUE_ITEMS_ADDED', 'uniqueItems')
  bound(ctx, 'maxContains', num(o.n.maxContains), num(u.n.maxContains))
  bound(ctx, 'minContains', num(o.n.minContains), num(u.n.minContains))
}
