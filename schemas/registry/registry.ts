/**
 * The operations of the Confluent Schema Registry API over the replicated state (state.ts) and its
 * log (store.ts). Reads answer from memory; writes append to the log, wait for their own record and
 * check that it won (see the rule in state.ts), retrying with fresh numbers when it did not.
 */
import type avro from 'avsc'
import { identityOf, parseReferences, type Reference, type SchemaSource } from './avro.ts'
import { sleep } from '../../common/timers.ts'
import { backoffDelay, type Backoff } from '../../connectors/retry.ts'
import {
  SCHEMA_TYPES,
  compatibilityErrorsOf,
  parseSchema,
  parseSchemaType,
  type ParsedSchema,
  type VersionedSchema,
} from './schema-types.ts'
import { serializedDescriptor } from './protobuf.ts'
import { INVALID_SCHEMA, RegistryError, errors } from './errors.ts'
import {
  assertValidSubject,
  guidOf,
  paged,
  parseRequestedId,
  parseRequestedVersion,
  parseVersion,
  sameReferences,
  sortedReferences,
  type BeforeRegisterHook,
  type Candidate,
  type Page,
  type RegisterOptions,
  type RegisterResult,
  type SchemaBody,
  type SchemaLog,
  type SchemaString,
  type SubjectVersion,
} from './requests.ts'
import { RegistrySettings } from './settings.ts'
import { configKey, deleteSubjectKey, modeKey, schemaKey, schemaValue, type RegistryState } from './state.ts'

const MAX_ATTEMPTS = 50
/** Between tries after a lost registration race: spread over all of 0..2 × (10 ms doubling, 500 ms at most). */
const CONTENTION_BACKOFF: Backoff = { initialDelayMs: 10, maxDelayMs: 500, jitter: 1 }

export { SCHEMA_TYPES }
export { assertValidSubject, guidOf, parseVersion } from './requests.ts'
export type {
  BeforeRegisterHook,
  Page,
  RegisterCandidate,
  RegisterOptions,
  RegisterResult,
  SchemaBody,
  SchemaLog,
  SchemaString,
  SubjectVersion,
} from './requests.ts'

export class SchemaRegistryService {
  private readonly compiled = new Map<number, ParsedSchema>()
  private writes: Promise<unknown> = Promise.resolve()
  /** See BeforeRegisterHook (cli/platform.ts sets the pinned-reader check). */
  beforeRegister: BeforeRegisterHook | undefined
  /** GET, PUT and DELETE /config and /mode (settings.ts). */
  readonly settings: RegistrySettings

  constructor(
    private readonly log: SchemaLog,
    options: { beforeRegister?: BeforeRegisterHook } = {},
  ) {
    this.beforeRegister = options.beforeRegister
    this.settings = new RegistrySettings(
      log,
      (op) => this.serialize(op),
      () => this.listSubjects(),
    )
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

  /** A registered schema id, parsed (cached: ids are immutable). */
  private compiledOf(id: number): ParsedSchema {
    let c = this.compiled.get(id)
    if (!c) {
      const s = this.state.schemas.get(id)
      if (!s) throw errors.schemaNotFound(id)
      c = parseSchema(
        parseSchemaType(s.schemaType),
        { schema: s.schema, references: s.references },
        this.lookupRef,
        false,
      )
      this.compiled.set(id, c)
    }
    return c
  }

  /** The compiled Avro type of a registered schema id (a DataError-free 42201 when it is not Avro). */
  typeOf(id: number): avro.Type {
    const c = this.compiledOf(id)
    if (!c.avro) throw errors.invalidSchema(`schema ${id} is ${c.schemaType}, not AVRO`)
    return c.avro
  }

  private candidate(body: SchemaBody, normalize: boolean): Candidate {
    if (body === null || typeof body !== 'object')
      throw errors.invalidSchema('the request body must be a JSON object with a "schema" string')
    const schemaType = parseSchemaType(body.schemaType)
    // Data contracts (metadata, rule sets) are not kept: refuse them rather than drop them silently.
    for (const k of ['metadata', 'ruleSet'] as const) {
      const v = (body as Record<string, unknown>)[k]
      if (v !== undefined && v !== null && !(typeof v === 'object' && Object.keys(v as object).length === 0)) {
        throw errors.invalidSchema(
          `"${k}" (Confluent data contracts) is not supported by this registry; send the schema without it`,
        )
      }
    }
    if (typeof body.schema !== 'string' || body.schema.trim() === '')
      throw errors.invalidSchema(`"schema" must be a non-empty string holding the ${schemaType} schema`)
    let references = parseReferences(body.references)
    if (normalize) references = sortedReferences(references)
    const parsed = parseSchema(schemaType, { schema: body.schema, references }, this.lookupRef, normalize)
    return {
      schema: parsed.stored,
      references,
      identity: identityOf(schemaType, parsed.stored, references),
      parsed,
      resolved: parsed.resolved,
    }
  }

  private earlierSchemas(subject: string): VersionedSchema[] {
    return this.state.versionsOf(subject).map((v) => ({ version: v.version, parsed: this.compiledOf(v.id) }))
  }

  private guid(id: number): string {
    const s = this.state.schemas.get(id)!
    return guidOf(s.schema, s.references)
  }

  private view(subject: string, version: number, id: number, meta?: { ts: number; deleted: boolean }): SubjectVersion {
    const s = this.state.schemas.get(id)
    if (!s) throw errors.schemaNotFound(id)
    const out: SubjectVersion = {
      subject,
      version,
      id,
      guid: guidOf(s.schema, s.references),
      schemaType: s.schemaType,
      schema: '',
    }
    if (s.references.length > 0) out.references = s.references
    delete (out as Partial<SubjectVersion>).schema
    out.schema = s.schema
    const e = meta ?? this.state.subjects.get(subject)?.get(version)
    if (e) {
      out.ts = e.ts
      out.deleted = e.deleted
    }
    return out
  }

  /** The stored text, or format=resolved (Avro: every referenced type written out). */
  formatted(id: number, format: string): string {
    const f = format.toLowerCase()
    const s = this.state.schemas.get(id)!
    if (f === 'resolved' && s.schemaType === 'AVRO') return this.compiledOf(id).resolved
    if (f === 'serialized' && s.schemaType === 'PROTOBUF') return serializedDescriptor(this.compiledOf(id).proto!)
    return s.schema
  }

  // ---- subjects ------------------------------------------------------------------------------

  /** deletedOnly: subjects with at least one soft-deleted version (Confluent's DELETED_ONLY filter). */
  listSubjects(opts: { deleted?: boolean; deletedOnly?: boolean; prefix?: string } & Page = {}): string[] {
    const prefix = opts.prefix ?? ''
    const subjects = [...this.state.subjects.keys()].filter((s) => {
      if (!s.startsWith(prefix) || (opts.visible && !opts.visible(s))) return false
      const vs = this.state.versionsOf(s, true)
      if (opts.deletedOnly) return vs.some((v) => v.deleted)
      return vs.some((v) => opts.deleted || !v.deleted)
    })
    return paged(subjects.sort(), opts)
  }

  /** deletedAsNegative (with deleted): soft-deleted versions as negative numbers, as Confluent. */
  listVersions(
    subject: string,
    opts: { deleted?: boolean; deletedOnly?: boolean; deletedAsNegative?: boolean } & Page = {},
  ): number[] {
    const all = this.state.versionsOf(subject, true)
    const vs = all.filter((v) => (opts.deletedOnly ? v.deleted : opts.deleted || !v.deleted))
    if (vs.length === 0 && (opts.deletedOnly ? all.length === 0 : true)) throw errors.subjectNotFound(subject)
    return paged(
      vs.map((v) => (opts.deletedAsNegative && v.deleted ? -v.version : v.version)),
      opts,
    )
  }

  getVersion(subject: string, versionParam: string, includeDeleted: boolean): SubjectVersion {
    const wanted = parseVersion(versionParam)
    const vs = this.state.versionsOf(subject, includeDeleted)
    if (vs.length === 0) throw errors.subjectNotFound(subject)
    const found = wanted === 'latest' ? vs[vs.length - 1] : vs.find((v) => v.version === wanted)
    if (!found) throw errors.versionNotFound(wanted)
    return this.view(subject, found.version, found.id, found)
  }

  /**
   * GET /schemas: every version of the subjects with the prefix (only the latest with latestOnly), by subject then
   * version.
   */
  listSchemas(opts: { prefix?: string; deleted?: boolean; latestOnly?: boolean } & Page = {}): SubjectVersion[] {
    const out: SubjectVersion[] = []
    for (const subject of [...this.state.subjects.keys()]
      .filter((s) => s.startsWith(opts.prefix ?? '') && (!opts.visible || opts.visible(s)))
      .sort()) {
      const vs = this.state.versionsOf(subject, opts.deleted === true)
      for (const v of opts.latestOnly ? vs.slice(-1) : vs) out.push(this.view(subject, v.version, v.id, v))
    }
    return paged(out, opts)
  }

  /**
   * Ids of schemas whose references point at subject/version. Referrers whose every version is
   * soft-deleted are left out unless asked (as Confluent's referencedby).
   */
  referencedBy(subject: string, versionParam: string, opts: { deleted?: boolean } & Page = {}): number[] {
    const v = this.getVersion(subject, versionParam, true)
    return paged(this.referrers(subject, v.version, opts.deleted === true), opts)
  }

  private referrers(subject: string, version: number, includeDeleted: boolean): number[] {
    return [...this.state.schemas.values()]
      .filter(
        (s) =>
          s.references.some((r) => r.subject === subject && r.version === version) &&
          this.state.usesOf(s.id, includeDeleted).length > 0,
      )
      .map((s) => s.id)
      .sort((a, b) => a - b)
  }

  /**
   * The version of `subject` that `c` is, newest first: the same registration (schema text and
   * references), or, as Confluent's ParsedSchema.canLookup, an equal schema once references are
   * resolved, when `c` has no references and the version has (a schema sent "fully inlined") or
   * both have the same references.
   */
  private findExisting(
    subject: string,
    c: Candidate,
    includeDeleted: boolean,
    latestOnly = false,
  ): { version: number; id: number } | undefined {
    let vs = this.state.versionsOf(subject, includeDeleted).reverse()
    if (latestOnly) vs = vs.slice(0, 1)
    const id = this.state.idByIdentity.get(c.identity)
    const same = id === undefined ? undefined : vs.find((v) => v.id === id)
    if (same) return same
    return vs.find((v) => {
      const prev = this.state.schemas.get(v.id)
      if (!prev || prev.schemaType !== c.parsed.schemaType) return false
      const refsOk =
        (c.references.length === 0 && prev.references.length > 0) || sameReferences(c.references, prev.references)
      if (!refsOk) return false
      try {
        return this.compiledOf(v.id).resolved === c.resolved
      } catch {
        return false
      }
    })
  }

  lookup(subject: string, body: SchemaBody, opts: { deleted?: boolean; normalize?: boolean } = {}): SubjectVersion {
    const c = this.candidate(body, this.settings.normalizeFor(subject, opts.normalize))
    const vs = this.state.versionsOf(subject, opts.deleted === true)
    if (vs.length === 0) throw errors.subjectNotFound(subject)
    const found = this.findExisting(subject, c, opts.deleted === true)
    if (!found) throw errors.schemaNotFound()
    return this.view(subject, found.version, found.id)
  }

  private registered(subject: string, version: number, id: number): RegisterResult {
    const s = this.state.schemas.get(id)!
    const out: RegisterResult = {
      id,
      version,
      guid: guidOf(s.schema, s.references),
      schemaType: s.schemaType,
      schema: '',
    }
    if (s.references.length > 0) out.references = s.references
    delete (out as Partial<RegisterResult>).schema
    out.schema = s.schema
    return out
  }

  /**
   * POST /subjects/{s}/versions, as Confluent's registerOrForward and register:
   * - an equal schema already live under the subject is answered as it is (version -1: only when it is
   *   the latest; an explicit version: only when it is that version);
   * - READONLY refuses (42205); an `id` needs IMPORT mode and IMPORT needs an `id` (42205);
   * - `version` > 0 is compare-and-set: it must be the subject's next version (42201 otherwise), except
   *   in IMPORT mode, where the version and id are taken as given and compatibility is not checked;
   * - `force=true` skips the compatibility check.
   */
  register(subject: string, body: SchemaBody, opts: RegisterOptions = {}): Promise<RegisterResult> {
    assertValidSubject(subject)
    const normalize = this.settings.normalizeFor(subject, opts.normalize)
    const c = this.candidate(body, normalize)
    const version = parseRequestedVersion(body.version)
    const wantedId = parseRequestedId(body.id)
    const pre = this.findExisting(subject, c, false, version === -1)
    if (
      pre &&
      (version <= 0 ? wantedId === undefined || wantedId === pre.id : wantedId === pre.id && version === pre.version)
    ) {
      return Promise.resolve(this.registered(subject, pre.version, pre.id))
    }
    const mode = this.settings.modeOf(subject)
    this.settings.assertWritable(subject)
    if (wantedId !== undefined && mode !== 'IMPORT')
      throw errors.notPermitted(`Subject ${subject} is not in import mode`)
    if (wantedId === undefined && mode !== 'READWRITE')
      throw errors.notPermitted(`Subject ${subject} is not in read-write mode`)
    return this.serialize(async () => {
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        const st = this.state
        const existingId = st.idByIdentity.get(c.identity)
        if (wantedId !== undefined) {
          const bound = st.schemas.get(wantedId)
          if (bound && bound.identity !== c.identity)
            throw errors.notPermitted(`Overwrite new schema with id ${wantedId} is not permitted.`)
          if (existingId !== undefined && existingId !== wantedId) throw errors.idDoesNotMatch(existingId, wantedId)
        }
        if (version <= 0) {
          const live = this.findExisting(subject, c, false, version === -1)
          if (live && (wantedId === undefined || live.id === wantedId))
            return this.registered(subject, live.version, live.id)
        }
        if (mode !== 'IMPORT' && !opts.force) {
          const problems = compatibilityErrorsOf(
            this.settings.effectiveLevel(subject),
            c.parsed,
            this.earlierSchemas(subject),
          )
          if (problems.length > 0) throw errors.incompatible(subject, problems)
        }
        const next = st.maxVersion(subject) + 1
        if (version > 0 && version !== next && mode !== 'IMPORT') {
          throw errors.invalidSchema(
            `Version is not one more than previous version: version ${version} was ` +
              `asked, the next version of subject '${subject}' is ${next}`,
          )
        }
        const newVersion = version > 0 ? version : next
        if (version > 0 && mode !== 'IMPORT') {
          // Confluent would register the same schema again as this new version; the log keeps one live
          // version per schema and subject (state.ts), so this is refused instead of lost in the replay.
          const live = existingId === undefined ? undefined : st.versionsOf(subject).find((v) => v.id === existingId)
          if (live)
            throw errors.invalidSchema(
              `the schema is already registered as version ${live.version} of subject ` +
                `'${subject}'; a subject holds one live version per schema here`,
            )
        }
        const taken = st.subjects.get(subject)?.get(newVersion)
        if (taken && taken.id !== (wantedId ?? existingId))
          throw errors.notPermitted(
            `Subject ${subject} version ${newVersion} is already registered with another schema (id ${taken.id})`,
          )
        const id = wantedId ?? existingId ?? st.maxId + 1
        // The hook guards the Avro contracts' pinned readers; other types have none.
        const after =
          this.beforeRegister && c.parsed.avro
            ? await this.beforeRegister({
                subject,
                version: newVersion,
                schema: c.schema,
                type: c.parsed.avro,
                readerOf: (v) => {
                  const e = this.state.versionsOf(subject).find((x) => x.version === v)
                  return e ? this.compiledOf(e.id).avro : undefined
                },
              })
            : undefined
        await this.log.append(
          schemaKey(subject, newVersion),
          schemaValue({
            subject,
            version: newVersion,
            id,
            schemaType: c.parsed.schemaType,
            schema: c.schema,
            references: c.references,
            deleted: false,
          }),
        )
        const slot = st.subjects.get(subject)?.get(newVersion)
        if (slot && slot.id === id && !slot.deleted && st.schemas.get(id)?.identity === c.identity) {
          if (after) await after().catch(() => undefined) // the hook logs its own failures; the version is registered
          return this.registered(subject, newVersion, id)
        }
        // Lost a race with another instance: put the winner back as the last record of the slot, so
        // that compaction keeps it, then try again from the state that now includes the winner.
        if (slot) {
          const w = st.schemas.get(slot.id)
          if (w) {
            await this.log.append(
              schemaKey(subject, newVersion),
              schemaValue({
                subject,
                version: newVersion,
                id: w.id,
                schemaType: w.schemaType,
                schema: w.schema,
                references: w.references,
                deleted: slot.deleted,
              }),
            )
          }
        }
        if (version > 0 || wantedId !== undefined)
          throw errors.notPermitted(
            `Subject ${subject} version ${newVersion} was registered concurrently with another schema`,
          )
        await sleep(backoffDelay(CONTENTION_BACKOFF, attempt + 1))
      }
      throw errors.store(
        `could not register a schema under '${subject}' after ${MAX_ATTEMPTS} attempts (too much contention)`,
      )
    })
  }

  /**
   * Referrers block a delete as in Confluent: a soft delete only while a referrer has a live version;
   * a permanent delete while any referrer version exists, soft-deleted ones included (restorable).
   */
  private assertNotReferenced(subject: string, versions: number[], permanent: boolean): void {
    for (const version of versions) {
      const ids = this.referrers(subject, version, permanent)
      if (ids.length === 0) continue
      const users = ids.flatMap((id) => this.state.usesOf(id, permanent))
      throw errors.referenceExists(subject, version, users.map((u) => `${u.subject} version ${u.version}`).join(', '))
    }
  }

  deleteVersion(subject: string, versionParam: string, permanent: boolean): Promise<number> {
    const wanted = parseVersion(versionParam)
    return this.serialize(async () => {
      const all = this.state.versionsOf(subject, true)
      if (all.length === 0) throw errors.subjectNotFound(subject)
      this.settings.assertWritable(subject)
      let v
      if (wanted === 'latest') {
        const pool = permanent ? all : all.filter((x) => !x.deleted)
        v = pool[pool.length - 1]
      } else v = all.find((x) => x.version === wanted)
      if (!v) throw errors.versionNotFound(wanted)
      const s = this.state.schemas.get(v.id)!
      if (!permanent) {
        if (v.deleted) throw errors.versionSoftDeleted(subject, v.version)
        this.assertNotReferenced(subject, [v.version], false)
        await this.log.append(
          schemaKey(subject, v.version),
          schemaValue({
            subject,
            version: v.version,
            id: v.id,
            schemaType: s.schemaType,
            schema: s.schema,
            references: s.references,
            deleted: true,
          }),
        )
      } else {
        if (!v.deleted) throw errors.versionNotSoftDeleted(subject, v.version)
        this.assertNotReferenced(subject, [v.version], true)
        await this.log.append(schemaKey(subject, v.version), null)
      }
      return v.version
    })
  }

  deleteSubject(subject: string, permanent: boolean): Promise<number[]> {
    return this.serialize(async () => {
      const all = this.state.versionsOf(subject, true)
      if (all.length === 0) throw errors.subjectNotFound(subject)
      this.settings.assertWritable(subject)
      const live = all.filter((v) => !v.deleted)
      if (!permanent) {
        if (live.length === 0) throw errors.subjectSoftDeleted(subject)
        this.assertNotReferenced(
          subject,
          live.map((v) => v.version),
          false,
        )
        await this.log.append(
          deleteSubjectKey(subject),
          JSON.stringify({ subject, version: live[live.length - 1]!.version }),
        )
        return live.map((v) => v.version)
      }
      if (live.length > 0) throw errors.subjectNotSoftDeleted(subject)
      this.assertNotReferenced(
        subject,
        all.map((v) => v.version),
        true,
      )
      for (const v of all) await this.log.append(schemaKey(subject, v.version), null)
      if (this.state.subjectConfigs.has(subject)) await this.log.append(configKey(subject), null)
      if (this.state.subjectModes.has(subject)) await this.log.append(modeKey(subject), null)
      return all.map((v) => v.version)
    })
  }

  // ---- schemas by id -------------------------------------------------------------------------

  /**
   * GET /schemas/ids/{id}. With `subject`, the version of that subject using the id (soft-deleted
   * included) gives subject, version, ts and deleted; without, the first use gives ts and deleted.
   */
  getById(
    id: number,
    opts: { subject?: string; format?: string; fetchMaxId?: boolean; visible?: (subject: string) => boolean } = {},
  ): SchemaString {
    const s = this.state.schemas.get(id)
    const uses = s ? this.state.usesOf(id, true) : []
    if (uses.length > 0 && opts.visible && !uses.some((u) => opts.visible!(u.subject)))
      throw errors.forbidden(`User is denied operation Read on schema id ${id}`)
    if (!s || uses.length === 0) throw errors.schemaNotFound(id)
    const out: SchemaString = {
      schemaType: s.schemaType,
      schema: opts.format ? this.formatted(id, opts.format) : s.schema,
      guid: guidOf(s.schema, s.references),
    }
    if (s.references.length > 0) out.references = s.references
    const use = (opts.subject ? uses.find((u) => u.subject === opts.subject) : undefined) ?? uses[0]!
    if (opts.subject && use.subject === opts.subject) {
      out.subject = use.subject
      out.version = use.version
    }
    const e = this.state.subjects.get(use.subject)?.get(use.version)
    if (e) {
      out.ts = e.ts
      out.deleted = e.deleted
    }
    if (opts.fetchMaxId) out.maxId = this.state.maxId
    return out
  }

  /** GET /schemas/guids/{guid}. */
  getByGuid(guid: string, format = '', visible?: (subject: string) => boolean): SchemaString {
    for (const id of this.state.schemas.keys()) {
      if (this.guid(id) === guid && this.state.usesOf(id, true).length > 0) {
        const {
          subject: _s,
          version: _v,
          maxId: _m,
          ...rest
        } = this.getById(id, visible ? { format, visible } : { format })
        return rest
      }
    }
    throw errors.schemaNotFound()
  }

  subjectsOf(id: number, opts: { deleted?: boolean; subject?: string } & Page = {}): string[] {
    this.getById(id, opts.visible ? { visible: opts.visible } : {})
    const subjects = [...new Set(this.state.usesOf(id, opts.deleted === true).map((u) => u.subject))].filter(
      (s) => (!opts.subject || s === opts.subject) && (!opts.visible || opts.visible(s)),
    )
    return paged(subjects, opts)
  }

  versionsOfId(
    id: number,
    opts: { deleted?: boolean; subject?: string } & Page = {},
  ): Array<{ subject: string; version: number }> {
    this.getById(id, opts.visible ? { visible: opts.visible } : {})
    return paged(
      this.state
        .usesOf(id, opts.deleted === true)
        .filter((u) => (!opts.subject || u.subject === opts.subject) && (!opts.visible || opts.visible(u.subject))),
      opts,
    )
  }

  // ---- compatibility -------------------------------------------------------------------------

  /**
   * POST /compatibility/subjects/{s}/versions[/{v}], as Confluent's CompatibilityResource: with a
   * version, against that version only ('latest': the latest; none yet: compatible); without, against
   * the subject's versions as the level says (non-transitive: the latest, transitive: all). An
   * invalid schema with verbose is `is_compatible: false` with the reason; without verbose, 42201.
   */
  checkCompatibility(
    subject: string,
    versionParam: string | undefined,
    body: SchemaBody,
    opts: { verbose?: boolean; normalize?: boolean } = {},
  ): { is_compatible: boolean; messages: string[] } {
    const wanted = versionParam === undefined ? undefined : parseVersion(versionParam)
    const earlier = this.earlierSchemas(subject)
    let against: VersionedSchema[]
    if (wanted === undefined) against = earlier
    else if (wanted === 'latest') against = earlier.slice(-1)
    else {
      const one = earlier.find((e) => e.version === wanted)
      if (!one) throw errors.versionNotFound(wanted)
      against = [one]
    }
    let c: Candidate
    try {
      c = this.candidate(body, this.settings.normalizeFor(subject, opts.normalize))
    } catch (err) {
      if (opts.verbose && err instanceof RegistryError && err.errorCode === INVALID_SCHEMA)
        return { is_compatible: false, messages: [err.message] }
      throw err
    }
    const messages = compatibilityErrorsOf(this.settings.effectiveLevel(subject), c.parsed, against)
    return { is_compatible: messages.length === 0, messages }
  }
}
