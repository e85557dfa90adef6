/**
 * The state of one JSON Schema compatibility comparison (json-schema-diff.ts): Confluent's Context, with
 * the differences found at a path, memoization and the truncation of recursive cycles shared by its
 * sub-contexts; and Confluent's strict set of compatible changes.
 */
import type { Model } from './json-schema-model.ts'
import { DiffPath, type Difference } from './diff-path.ts'

/** Confluent's COMPATIBLE_CHANGES_STRICT (SchemaDiff). Every other Difference.Type is incompatible. */
export const COMPATIBLE_CHANGES: ReadonlySet<string> = new Set([
  'ID_CHANGED',
  'DESCRIPTION_CHANGED',
  'TITLE_CHANGED',
  'DEFAULT_CHANGED',
  'SCHEMA_REMOVED',
  'TYPE_EXTENDED',
  'MAX_LENGTH_INCREASED',
  'MAX_LENGTH_REMOVED',
  'MIN_LENGTH_DECREASED',
  'MIN_LENGTH_REMOVED',
  'PATTERN_REMOVED',
  'MAXIMUM_INCREASED',
  'MAXIMUM_REMOVED',
  'MINIMUM_DECREASED',
  'MINIMUM_REMOVED',
  'EXCLUSIVE_MAXIMUM_INCREASED',
  'EXCLUSIVE_MAXIMUM_REMOVED',
  'EXCLUSIVE_MINIMUM_DECREASED',
  'EXCLUSIVE_MINIMUM_REMOVED',
  'MULTIPLE_OF_REDUCED',
  'MULTIPLE_OF_REMOVED',
  'REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED',
  'REQUIRED_ATTRIBUTE_REMOVED',
  'DEPENDENCY_ARRAY_NARROWED',
  'DEPENDENCY_ARRAY_REMOVED',
  'DEPENDENCY_SCHEMA_REMOVED',
  'MAX_PROPERTIES_INCREASED',
  'MAX_PROPERTIES_REMOVED',
  'MIN_PROPERTIES_DECREASED',
  'MIN_PROPERTIES_REMOVED',
  'ADDITIONAL_PROPERTIES_ADDED',
  'ADDITIONAL_PROPERTIES_EXTENDED',
  'UNEVALUATED_PROPERTIES_ADDED',
  'UNEVALUATED_PROPERTIES_EXTENDED',
  'PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL',
  'REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_UNOPEN_CONTENT_MODEL',
  'OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL',
  'PROPERTY_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL',
  'PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL',
  'PROPERTY_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL',
  'PROPERTY_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL',
  'MAX_ITEMS_INCREASED',
  'MAX_ITEMS_REMOVED',
  'MIN_ITEMS_DECREASED',
  'MIN_ITEMS_REMOVED',
  'MAX_CONTAINS_INCREASED',
  'MAX_CONTAINS_REMOVED',
  'MIN_CONTAINS_DECREASED',
  'MIN_CONTAINS_REMOVED',
  'UNIQUE_ITEMS_REMOVED',
  'ADDITIONAL_ITEMS_ADDED',
  'ADDITIONAL_ITEMS_EXTENDED',
  'UNEVALUATED_ITEMS_ADDED',
  'UNEVALUATED_ITEMS_EXTENDED',
  'ITEM_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL',
  'ITEM_ADDED_TO_CLOSED_CONTENT_MODEL',
  'ITEM_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL',
  'ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL',
  'ITEM_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL',
  'ITEM_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL',
  'ENUM_ARRAY_EXTENDED',
  'COMBINED_TYPE_EXTENDED',
  'PRODUCT_TYPE_NARROWED',
  'SUM_TYPE_EXTENDED',
  'NOT_TYPE_NARROWED',
])

export type { Difference }

export type Pair = string
/**
 * Confluent's Context: the differences found at a path, with memoization and cycle truncation shared by sub-contexts.
 */
export class Context extends DiffPath {
  constructor(
    private readonly shared: {
      memo: Map<Pair, Difference[]>
      inProgress: Set<Pair>
      seed: Map<Pair, Difference[]>
      optimism: boolean
      ids: WeakMap<object, number>
      next: number
    },
  ) {
    super()
  }

  sub(): Context {
    const c = new Context(this.shared)
    c.path.push(...this.path)
    return c
  }

  addAll(d: Difference[]): void {
    this.diffs.push(...d)
  }

  compatible(): boolean {
    return this.diffs.every((d) => COMPATIBLE_CHANGES.has(d.type))
  }

  private id(m: Model): number {
    let i = this.shared.ids.get(m)
    if (i === undefined) this.shared.ids.set(m, (i = this.shared.next++))
    return i
  }

  /** Compares a pair once; a pair met again while being compared is a recursive cycle, assumed compatible. */
  memoized(o: Model, u: Model, f: (c: Context) => void): void {
    const key = `${this.id(o)}:${this.id(u)}`
    let result = this.shared.memo.get(key)
    if (!result) {
      if (this.shared.inProgress.has(key)) {
        result = this.shared.seed.get(key)
        if (!result) {
          this.shared.optimism = true
          return
        }
      } else {
        this.shared.inProgress.add(key)
        try {
          const c = new Context(this.shared)
          f(c)
          result = c.diffs
          this.shared.memo.set(key, result)
        } finally {
          this.shared.inProgress.delete(key)
        }
      }
    }
    const prefix = '#/' + this.path.join('/')
    for (const d of result)
      this.diffs.push({
        type: d.type,
        path: this.path.length === 0 ? d.path : d.path.length <= 2 ? prefix : `${prefix}/${d.path.slice(2)}`,
      })
  }

  incompatiblePairs(): Map<Pair, Difference[]> {
    return new Map([...this.shared.memo].filter(([, d]) => d.some((x) => !COMPATIBLE_CHANGES.has(x.type))))
  }

  get optimism(): boolean {
    return this.shared.optimism
  }
}
