/**
 * The operations of the Confluent Schema Registry API over the replicated state (state.ts) and its
 * log (store.ts). Reads answer from memory; writes append to the log, wait for their own record and
 * check that it won (see the rule in state.ts), retrying with fresh numbers when it did not.
 */
import type avro from 'avsc'
import {
  DEFAULT_COMPATIBILITY,
  compact,
  compatibilityErrors,
  identityOf,
  parseAvro,
  parseLevel,
  parseReferences,

  type CompatibilityLevel,
  type Reference,
  type SchemaSource,
  type VersionedType,
} from './avro.ts'
import { errors } from './errors.ts'
import { configKey, deleteSubjectKey, schemaKey, schemaValue, type RegistryState } from './state.ts'

/** What the registry needs from its storage: the replayed state and an append that reads its own write. */
export interface SchemaLog {
  readonly state: RegistryState
  append(key: string, value: string | null): Promise<number>
}

export interface SchemaBody {
  schema?: unknown
  schemaType?: unknown
  references?: unknown
}

export interface SubjectVersion {
  subject: string
  version: number
  id: number
  schemaType?: string
  schema: string
  references?: Reference[]
}

const MAX_ATTEMPTS = 50
const MAX_VERSION = 2 ** 31 - 1

export const SCHEMA_TYPES = ['AVRO'] as const

/** 'latest', -1 or 1..2^31-1; anything else is 42202. */
export function parseVersion(v: string): number | 'latest' {
  if (v === 'latest' || v === '-1') return 'latest'
  if (!/^\d+$/.test(v)) throw errors.invalidVersion(v)
  const n = Number(v)
  if (n < 1 || n > MAX_VERSION) throw errors.invalidVersion(v)
  return n
}

interface Candidate {
  schema: string
  references: Reference[]
  identity: string
  type: avro.Type
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

export class SchemaRegistryService {
  private readonly types = new Map<number, avro.Type>()
  private writes: Promise<unknown> = Promise.resolve()
  /** See BeforeRegisterHook (cli/platform.ts sets the pinned-reader check). */
  beforeRegister: BeforeRegisterHook | undefined

  constructor(private readonly log: SchemaLog, options: { beforeRegister?: BeforeRegisterHook } = {}) {
    this.beforeRegister = options.beforeRegister
  }

  private get state(): RegistryState {
    return this.log.state
  }

  /** One write at a time per instance (instances still race each other; state.ts settles that). */
  private serialize<T>(op: () => Promise<T>): Promise<T> {
    const next = this.writes.then(op, op)
    this.writes = next.catch(() => undefined)
    return next
  }

  private lookupRef = (ref: Reference): SchemaSource | undefined => {
    const e = this.state.subjects.get(ref.subject)?.get(ref.version)
    const s = e ? this.state.schemas.get(e.id) : undefined
    return s ? { schema: s.schema, references: s.references } : undefined
  }

  /** The compiled type of a registered schema id (cached: ids are immutable). */
  typeOf(id: number): avro.Type {
    let t = this.types.get(id)
    if (!t) {
      const s = this.state.schemas.get(id)
      if (!s) throw errors.schemaNotFound(id)
      t = parseAvro({ schema: s.schema, references: s.references }, this.lookupRef)
      this.types.set(id, t)
    }
    return t
  }

  private candidate(body: SchemaBody): Candidate {
    if (body === null || typeof body !== 'object') throw errors.invalidSchema('the request body must be a JSON object with a "schema" string')
    const schemaType = body.schemaType ?? 'AVRO'
    if (schemaType !== 'AVRO') {
      throw errors.invalidSchema(`schemaType ${JSON.stringify(schemaType)} is not supported; this registry supports ${SCHEMA_TYPES.join(', ')}`)
    }
    if (typeof body.schema !== 'string' || body.schema.trim() === '') throw errors.invalidSchema('"schema" must be a non-empty string holding the Avro schema as JSON')
    const references = parseReferences(body.references)
    const type = parseAvro({ schema: body.schema, references }, this.lookupRef)
    const schema = compact(body.schema)
    return { schema, references, identity: identityOf('AVRO', schema, references), type }
  }

  effectiveLevel(subject: string): CompatibilityLevel {
    return this.state.subjectLevels.get(subject) ?? this.state.globalLevel ?? DEFAULT_COMPATIBILITY
  }

  private earlierTypes(subject: string): VersionedType[] {
    return this.state.versionsOf(subject).map((v) => ({ version: v.version, type: this.typeOf(v.id) }))
  }

  private view(subject: string, version: number, id: number): SubjectVersion {
    const s = this.state.schemas.get(id)
    if (!s) throw errors.schemaNotFound(id)
    const out: SubjectVersion = { subject, version, id, schema: s.schema }
    if (s.schemaType !== 'AVRO') out.schemaType = s.schemaType
    if (s.references.length > 0) out.references = s.references
    return out
  }

  // ---- subjects ------------------------------------------------------------------------------

  listSubjects(includeDeleted: boolean, prefix = ''): string[] {
    return [...this.state.subjects.keys()].filter((s) => s.startsWith(prefix) && this.state.versionsOf(s, includeDeleted).length > 0).sort()
  }

  listVersions(subject: string, includeDeleted: boolean): number[] {
    const vs = this.state.versionsOf(subject, includeDeleted)
    if (vs.length === 0) throw errors.subjectNotFound(subject)
    return vs.map((v) => v.version)
  }

  getVersion(subject: string, versionParam: string, includeDeleted: boolean): SubjectVersion {
    const wanted = parseVersion(versionParam)
    const vs = this.state.versionsOf(subject, includeDeleted)
    if (vs.length === 0) throw errors.subjectNotFound(subject)
    const found = wanted === 'latest' ? vs[vs.length - 1] : vs.find((v) => v.version === wanted)
    if (!found) throw errors.versionNotFound(wanted)
    return this.view(subject, found.version, found.id)
  }

  /** Ids of schemas whose references point at subject/version. */
  referencedBy(subject: string, versionParam: string): number[] {
    const v = this.getVersion(subject, versionParam, true)
    return [...this.state.schemas.values()]
      .filter((s) => s.references.some((r) => r.subject === subject && r.version === v.version) && this.state.usesOf(s.id, true).length > 0)
      .map((s) => s.id)
      .sort((a, b) => a - b)
  }

  lookup(subject: string, body: SchemaBody, includeDeleted: boolean): SubjectVersion {
    const c = this.candidate(body)
    const vs = this.state.versionsOf(subject, includeDeleted)
    if (vs.length === 0) throw errors.subjectNotFound(subject)
    const id = this.state.idByIdentity.get(c.identity)
    const found = id === undefined ? undefined : [...vs].reverse().find((v) => v.id === id)
    if (!found) throw errors.schemaNotFound()
    return this.view(subject, found.version, found.id)
  }

  register(subject: string, body: SchemaBody): Promise<{ id: number; version: number }> {
    if (subject === '') throw errors.invalidSchema('the subject name is empty')
    const c = this.candidate(body)
    return this.serialize(async () => {
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        const st = this.state
        const existingId = st.idByIdentity.get(c.identity)
        if (existingId !== undefined) {
          const live = st.versionsOf(subject).find((v) => v.id === existingId)
          if (live) return { id: existingId, version: live.version }
        }
        const level = this.effectiveLevel(subject)
        const problems = compatibilityErrors(level, c.type, this.earlierTypes(subject))
        if (problems.length > 0) throw errors.incompatible(subject, problems)
        const id = existingId ?? st.maxId + 1
        const version = st.maxVersion(subject) + 1
        const after = this.beforeRegister
          ? await this.beforeRegister({
              subject,
              version,
              schema: c.schema,
              type: c.type,
              readerOf: (v) => {
                const e = this.state.versionsOf(subject).find((x) => x.version === v)
                return e ? this.typeOf(e.id) : undefined
              },
            })
          : undefined
        await this.log.append(schemaKey(subject, version), schemaValue({ subject, version, id, schemaType: 'AVRO', schema: c.schema, references: c.references, deleted: false }))
        const slot = st.subjects.get(subject)?.get(version)
        if (slot && slot.id === id && st.schemas.get(id)?.identity === c.identity) {
          if (after) await after().catch(() => undefined) // the hook logs its own failures; the version is registered
          return { id, version }
        }
        // Lost a race with another instance: put the winner back as the last record of the slot, so
        // that compaction keeps it, then try again from the state that now includes the winner.
        if (slot) {
          const w = st.schemas.get(slot.id)
          if (w) {
            await this.log.append(
              schemaKey(subject, version),
              schemaValue({ subject, version, id: w.id, schemaType: w.schemaType, schema: w.schema, references: w.references, deleted: slot.deleted }),
            )
          }
        }
        await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 20 * (attempt + 1))))
      }
      throw errors.store(`could not register a schema under '${subject}' after ${MAX_ATTEMPTS} attempts (too much contention)`)
    })
  }

  private assertNotReferenced(subject: string, versions: number[]): void {
    for (const s of this.state.schemas.values()) {
      const ref = s.references.find((r) => r.subject === subject && versions.includes(r.version))
      if (!ref) continue
      const users = this.state.usesOf(s.id, true)
      if (users.length > 0) throw errors.referenceExists(subject, ref.version, users.map((u) => `${u.subject} version ${u.version}`).join(', '))
    }
  }

  deleteVersion(subject: string, versionParam: string, permanent: boolean): Promise<number> {
    const wanted = parseVersion(versionParam)
    return this.serialize(async () => {
      const all = this.state.versionsOf(subject, true)
      if (all.length === 0) throw errors.subjectNotFound(subject)
      let v
      if (wanted === 'latest') {
        const pool = permanent ? all : all.filter((x) => !x.deleted)
        v = pool[pool.length - 1]
      } else v = all.find((x) => x.version === wanted)
      if (!v) throw errors.versionNotFound(wanted)
      const s = this.state.schemas.get(v.id)!
      if (!permanent) {
        if (v.deleted) throw errors.versionSoftDeleted(subject, v.version)
        this.assertNotReferenced(subject, [v.version])
        await this.log.append(
          schemaKey(subject, v.version),
          schemaValue({ subject, version: v.version, id: v.id, schemaType: s.schemaType, schema: s.schema, references: s.references, deleted: true }),
        )
      } else {
        if (!v.deleted) throw errors.versionNotSoftDeleted(subject, v.version)
        this.assertNotReferenced(subject, [v.version])
        await this.log.append(schemaKey(subject, v.version), null)
      }
      return v.version
    })
  }

  deleteSubject(subject: string, permanent: boolean): Promise<number[]> {
    return this.serialize(async () => {
      const all = this.state.versionsOf(subject, true)
      if (all.length === 0) throw errors.subjectNotFound(subject)
      const live = all.filter((v) => !v.deleted)
      if (!permanent) {
        if (live.length === 0) throw errors.subjectSoftDeleted(subject)
        this.assertNotReferenced(subject, live.map((v) => v.version))
        await this.log.append(deleteSubjectKey(subject), JSON.stringify({ subject, version: live[live.length - 1]!.version }))
        return live.map((v) => v.version)
      }
      if (live.length > 0) throw errors.subjectNotSoftDeleted(subject)
      this.assertNotReferenced(subject, all.map((v) => v.version))
      for (const v of all) await this.log.append(schemaKey(subject, v.version), null)
      if (this.state.subjectLevels.has(subject)) await this.log.append(configKey(subject), null)
      return all.map((v) => v.version)
    })
  }

  // ---- schemas by id -------------------------------------------------------------------------

  getById(id: number): { schema: string; schemaType?: string; references?: Reference[] } {
    const s = this.state.schemas.get(id)
    if (!s || this.state.usesOf(id, true).length === 0) throw errors.schemaNotFound(id)
    const out: { schema: string; schemaType?: string; references?: Reference[] } = { schema: s.schema }
    if (s.schemaType !== 'AVRO') out.schemaType = s.schemaType
    if (s.references.length > 0) out.references = s.references
    return out
  }

  subjectsOf(id: number, includeDeleted: boolean): string[] {
    this.getById(id)
    return [...new Set(this.state.usesOf(id, includeDeleted).map((u) => u.subject))]
  }

  versionsOfId(id: number, includeDeleted: boolean): Array<{ subject: string; version: number }> {
    this.getById(id)
    return this.state.usesOf(id, includeDeleted)
  }

  // ---- config --------------------------------------------------------------------------------

  getGlobalConfig(): { compatibilityLevel: CompatibilityLevel } {
    return { compatibilityLevel: this.state.globalLevel ?? DEFAULT_COMPATIBILITY }
  }

  getSubjectConfig(subject: string, defaultToGlobal: boolean): { compatibilityLevel: CompatibilityLevel } {
    const level = this.state.subjectLevels.get(subject)
    if (level) return { compatibilityLevel: level }
    if (defaultToGlobal) return this.getGlobalConfig()
    throw errors.subjectCompatibilityNotConfigured(subject)
  }

  setConfig(subject: string | null, body: unknown): Promise<{ compatibility: CompatibilityLevel }> {
    const raw = body !== null && typeof body === 'object' ? (body as { compatibility?: unknown; compatibilityLevel?: unknown }) : {}
    const level = parseLevel(raw.compatibility ?? raw.compatibilityLevel)
    return this.serialize(async () => {
      await this.log.append(configKey(subject), JSON.stringify({ compatibilityLevel: level }))
      return { compatibility: level }
    })
  }

  deleteConfig(subject: string | null): Promise<{ compatibilityLevel: CompatibilityLevel }> {
    return this.serialize(async () => {
      if (subject === null) {
        const prev = this.getGlobalConfig()
        await this.log.append(configKey(null), null)
        return prev
      }
      const level = this.state.subjectLevels.get(subject)
      if (!level) {
        if (this.state.versionsOf(subject, true).length === 0) throw errors.subjectNotFound(subject)
        throw errors.subjectCompatibilityNotConfigured(subject)
      }
      await this.log.append(configKey(subject), null)
      return { compatibilityLevel: level }
    })
  }

  // ---- compatibility -------------------------------------------------------------------------

  /** versionParam undefined: against all versions (as POST /compatibility/subjects/{s}/versions). */
  checkCompatibility(subject: string, versionParam: string | undefined, body: SchemaBody): { is_compatible: boolean; messages: string[] } {
    const wanted = versionParam === undefined ? undefined : parseVersion(versionParam)
    const c = this.candidate(body)
    const level = this.effectiveLevel(subject)
    const earlier = this.earlierTypes(subject)
    let messages: string[]
    if (wanted === 'latest') {
      messages = compatibilityErrors(level, c.type, earlier)
    } else if (wanted === undefined) {
      messages = compatibilityErrors(level.endsWith('_TRANSITIVE') || level === 'NONE' ? level : (`${level}_TRANSITIVE` as CompatibilityLevel), c.type, earlier)
    } else {
      const one = earlier.find((e) => e.version === wanted)
      if (!one) throw errors.versionNotFound(wanted)
      messages = compatibilityErrors(level, c.type, [one])
    }
    return { is_compatible: messages.length === 0, messages }
  }
}

