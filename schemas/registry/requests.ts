/**
 * What the registry's operations (registry.ts) take and answer, as Confluent's API spells them, and
 * how their parameters are read: versions, subjects, references, pages, guids.
 */
import { createHash } from 'node:crypto'
import type avro from 'avsc'
import type { Reference } from './avro.ts'
import { errors } from './errors.ts'
import type { ParsedSchema } from './schema-types.ts'
import type { RegistryState } from './state.ts'

/** What the registry needs from its storage: the replayed state and an append that reads its own write. */
export interface SchemaLog {
  readonly state: RegistryState
  append(key: string, value: string | null): Promise<number>
}

export interface SchemaBody {
  schema?: unknown
  schemaType?: unknown
  references?: unknown
  /** Register: the version wanted (compare-and-set, or as given in IMPORT mode); -1: compare with the latest only. */
  version?: unknown
  /** Register in IMPORT mode: the id the schema must get. */
  id?: unknown
}

/** A subject version as Confluent 8 answers it. */
export interface SubjectVersion {
  subject: string
  version: number
  id: number
  guid: string
  schemaType: string
  references?: Reference[]
  schema: string
  ts?: number
  deleted?: boolean
}

/** GET /schemas/ids/{id}: Confluent's SchemaString (subject and version when ?subject= names a user of the id). */
export interface SchemaString {
  schemaType: string
  schema: string
  references?: Reference[]
  guid: string
  subject?: string
  version?: number
  ts?: number
  deleted?: boolean
  maxId?: number
}

/** What Confluent's register answers (8.x; older releases answered {id} only). */
export interface RegisterResult {
  id: number
  version: number
  guid: string
  schemaType: string
  references?: Reference[]
  schema: string
}

export interface Page {
  offset?: number
  /** -1 or undefined: no limit. */
  limit?: number
  /** Only the subjects the caller may read (applied before offset and limit). */
  visible?: (subject: string) => boolean
}

export const MAX_VERSION = 2 ** 31 - 1

/** 'latest', -1 or 1..2^31-1; anything else is 42202. */
export function parseVersion(v: string): number | 'latest' {
  if (v === 'latest' || v === '-1') return 'latest'
  if (!/^\d+$/.test(v)) throw errors.invalidVersion(v)
  const n = Number(v)
  if (n < 1 || n > MAX_VERSION) throw errors.invalidVersion(v)
  return n
}

/**
 * Confluent's rule (QualifiedSubject.isValidSubject): no ISO control characters, and not the names it
 * reserves for the global config and mode.
 */
export function assertValidSubject(subject: string): void {
  // eslint-disable-next-line no-control-regex
  if (subject === '' || /[\u0000-\u001f\u007f-\u009f]/.test(subject) || subject === '__GLOBAL' || subject === '__EMPTY')
    throw errors.invalidSubject(subject)
}

/**
 * A schema's fields of an answer (a subject's version, a registration), in Confluent's order: guid,
 * schemaType, references (only when there are some), schema.
 */
export function schemaFields(s: {
  schema: string
  schemaType: string
  references: Reference[]
}): Pick<RegisterResult, 'guid' | 'schemaType' | 'references' | 'schema'> {
  return {
    guid: guidOf(s.schema, s.references),
    schemaType: s.schemaType,
    ...(s.references.length > 0 ? { references: s.references } : {}),
    schema: s.schema,
  }
}

/** Confluent's guid of a schema: the UUID made of the MD5 of its text and references (Schema.getGuid). */
export function guidOf(schema: string, references: Reference[]): string {
  const md5 = createHash('md5').update(schema, 'utf8')
  for (const r of references) {
    md5.update(r.name, 'utf8').update(r.subject, 'utf8')
    const v = Buffer.alloc(4)
    v.writeInt32BE(r.version)
    md5.update(v)
  }
  const h = md5.digest('hex')
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`
}

export function paged<T>(items: T[], page: Page = {}): T[] {
  const offset = Math.max(0, page.offset ?? 0)
  const limit = page.limit === undefined || page.limit < 0 ? Infinity : page.limit
  return items.slice(offset, offset + limit)
}

export interface Candidate {
  schema: string
  references: Reference[]
  identity: string
  parsed: ParsedSchema
  /** The schema with every referenced type written out: how a "fully inlined" schema is matched. */
  resolved: string
}

/** What a register hook is shown: a new version about to be registered under a subject. */
export interface RegisterCandidate {
  subject: string
  /** The version it will get. */
  version: number
  schema: string
  type: avro.Type
  /** The compiled schema of an existing (not deleted) version of the subject. */
  readerOf(version: number): avro.Type | undefined
}

/**
 * Called before a NEW version of a subject is registered (after the compatibility check): throw a
 * RegistryError to refuse it; return a function to run once it is registered (or nothing).
 * Injected by the composition root, so that schemas/ depends on nothing above it.
 */
export type BeforeRegisterHook = (candidate: RegisterCandidate) => Promise<(() => Promise<void>) | void>

export interface RegisterOptions {
  /** ?normalize=true (the subject's or global config `normalize` applies too). */
  normalize?: boolean
  /** ?force=true: skip the compatibility check. */
  force?: boolean
}

export function parseRequestedVersion(v: unknown): number {
  if (v === undefined || v === null || v === 0) return 0
  if (v === -1) return -1
  if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > MAX_VERSION)
    throw errors.invalidSchema(`"version" must be -1, 0 or an integer between 1 and 2^31-1, not ${JSON.stringify(v)}`)
  return v as number
}

export function parseRequestedId(v: unknown): number | undefined {
  if (v === undefined || v === null || v === -1) return undefined
  if (!Number.isInteger(v) || (v as number) < 0 || (v as number) > MAX_VERSION)
    throw errors.invalidSchema(`"id" must be a non-negative integer, not ${JSON.stringify(v)}`)
  return v as number
}

export function sameReferences(a: Reference[], b: Reference[]): boolean {
  return (
    a.length === b.length &&
    a.every((r, i) => r.name === b[i]!.name && r.subject === b[i]!.subject && r.version === b[i]!.version)
  )
}

/** Confluent's normalize sorts references (by name, then subject, then version) and drops duplicates. */
export function sortedReferences(refs: Reference[]): Reference[] {
  const key = (r: Reference) => JSON.stringify([r.name, r.subject, r.version])
  const unique = [...new Map(refs.map((r) => [key(r), r])).values()]
  return unique.sort((x, y) =>
    x.name !== y.name
      ? x.name < y.name
        ? -1
        : 1
      : x.subject !== y.subject
        ? x.subject < y.subject
          ? -1
          : 1
        : x.version - y.version,
  )
}
