/**
 * The operations of the Confluent Schema Registry API over the replicated state (state.ts) and its
 * log (store.ts). Reads answer from memory; writes append to the log, wait for their own record and
 * check that it won (see the rule in state.ts), retrying with fresh numbers when it did not. The reads
 * are in reads.ts.
 */
import { sleep } from '../../common/timers.ts'
import { backoffDelay, type Backoff } from '../../connectors/retry.ts'
import { SCHEMA_TYPES, compatibilityErrorsOf, type VersionedSchema } from './schema-types.ts'
import { INVALID_SCHEMA, RegistryError, errors } from './errors.ts'
import {
  assertValidSubject,
  parseRequestedId,
  parseRequestedVersion,
  parseVersion,
  schemaFields,
  type BeforeRegisterHook,
  type Candidate,
  type RegisterOptions,
  type RegisterResult,
  type SchemaBody,
  type SchemaLog,
  type SubjectVersion,
} from './requests.ts'
import { RegistrySettings } from './settings.ts'
import { RegistryReads } from './reads.ts'
import { configKey, deleteSubjectKey, modeKey, schemaKey, schemaValue } from './state.ts'

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

export class SchemaRegistryService extends RegistryReads {
  private writes: Promise<unknown> = Promise.resolve()
  /** See BeforeRegisterHook (cli/platform.ts sets the pinned-reader check). */
  beforeRegister: BeforeRegisterHook | undefined
  /** GET, PUT and DELETE /config and /mode (settings.ts). */
  readonly settings: RegistrySettings

  constructor(log: SchemaLog, options: { beforeRegister?: BeforeRegisterHook } = {}) {
    super(log)
    this.beforeRegister = options.beforeRegister
    this.settings = new RegistrySettings(
      log,
      (op) => this.serialize(op),
      () => this.listSubjects(),
    )
  }

  /** One write at a time per instance (instances still race each other; state.ts settles that). */
  private serialize<T>(op: () => Promise<T>): Promise<T> {
    const next = this.writes.then(op, op)
    this.writes = next.catch(() => undefined)
    return next
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
    return { id, version, ...schemaFields(this.state.schemas.get(id)!) }
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
