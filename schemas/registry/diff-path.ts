/**
 * What the registry's compatibility diffs (JSON Schema in json-schema-diff.ts, Protobuf in
 * protobuf-diff.ts, both ports of Confluent's) share: the differences found so far, each at a path in
 * Confluent's form (`#/properties/a/oneOf/0`, `#/Message/3`), built while the comparison walks down.
 */
export interface Difference {
  type: string
  /** The path in Confluent's form, e.g. "#/properties/a/oneOf/0". */
  path: string
}

export class DiffPath {
  readonly diffs: Difference[] = []
  constructor(protected readonly path: string[] = []) {}

  /** Runs `f` one segment further down the path. */
  at<T>(segment: string, f: () => T): T {
    this.path.push(segment)
    try {
      return f()
    } finally {
      this.path.pop()
    }
  }

  add(type: string, ...segments: string[]): void {
    this.diffs.push({ type, path: '#/' + [...this.path, ...segments].join('/') })
  }
}
