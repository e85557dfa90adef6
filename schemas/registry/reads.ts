/**
 * The read side of the schema registry (registry.ts holds the writes): answers from the replicated
 * state in memory (state.ts), with the parsed schemas cached by id (ids are immutable).
 */
import type avro from 'avsc'
import { identityOf, parseReferences, type Reference, type SchemaSource } from './avro.ts'
import { parseSchema, parseSchemaType, type ParsedSchema, type VersionedSchema } from './schema-types.ts'
import { serializedDescriptor } from './protobuf.ts'
import { errors } from './errors.ts'
import {
  guidOf,
  paged,
  parseVersion,
  schemaFields,
  sameReferences,
  sortedReferences,
  type Candidate,
  type Page,
  type SchemaBody,
  type SchemaLog,
  type SchemaString,
  type SubjectVersion,
} from './requests.ts'
import type { RegistryState } from './state.ts'

export class RegistryReads {
  constructor(protected readonly log: SchemaLog) {}

  protected readonly compiled = new Map<number, ParsedSchema>()

  protected get state(): RegistryState {
    return this.log.state
  }

  protected lookupRef = (ref: Reference): SchemaSource | undefined => {
    const e = this.state.subjects.get(ref.subject)?.get(ref.version)
    const s = e ? this.state.schemas.get(e.id) : undefined
    return s ? { schema: s.schema, references: s.references } : undefined
  }

  /** A registered schema id, parsed (cached: ids are immutable). */
  protected compiledOf(id: number): ParsedSchema {
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

  protected candidate(body: SchemaBody, normalize: boolean): Candidate {
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

  protected earlierSchemas(subject: string): VersionedSchema[] {
    return this.state.versionsOf(subject).map((v) => ({ version: v.version, parsed: this.compiledOf(v.id) }))
  }

  protected guid(id: number): string {
    const s = this.state.schemas.get(id)!
    return guidOf(s.schema, s.references)
  }

  protected view(
    subject: string,
    version: number,
    id: number,
    meta?: { ts: number; deleted: boolean },
  ): SubjectVersion {
    const s = this.state.schemas.get(id)
    if (!s) throw errors.schemaNotFound(id)
    const out: SubjectVersion = { subject, version, id, ...schemaFields(s) }
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

  protected referrers(subject: string, version: number, includeDeleted: boolean): number[] {
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
  protected findExisting(
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
}
