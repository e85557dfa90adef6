/**
 * The registry's state, rebuilt by replaying the `_schemas` log. Records use Confluent Schema
 * Registry's format (JSON keys and values), so a Confluent registry can read a log we wrote and we
 * can read one it wrote:
 *
 *   key {"keytype":"SCHEMA","subject":s,"version":v,"magic":1}
 *       value {"subject","version","id","schemaType","schema","references","deleted"}, null = hard delete
 *   key {"keytype":"CONFIG","subject":s,"magic":0} (no subject: global)  value {"compatibilityLevel", "normalize",
 *       "alias", ... every field of Confluent's ConfigValue}, null = unset
 *   key {"keytype":"MODE","subject":s,"magic":0} (no subject: global)  value {"mode"}, null = unset
 *   key {"keytype":"DELETE_SUBJECT","subject":s,"magic":0}  value {"subject","version"}: soft-deletes
 *       every version up to `version`
 *   anything else (NOOP, CONTEXT, CLEAR_SUBJECT, ...) is ignored.
 * A version's `ts` is the timestamp of the Kafka record that wrote it (as Confluent's).
 *
 * Several registry instances may write to the log at once without a leader. What keeps them from
 * handing out one id for two schemas is a rule every instance applies identically while replaying
 * the single-partition log, in log order:
 *
 *   A SCHEMA record is accepted only if it contradicts nothing accepted before it:
 *     - its id is unbound, or bound to the same schema (identity: type + canonical JSON + references);
 *     - its schema has no id yet, or has this id;
 *     - its (subject, version) slot is free, or holds this same id (a soft delete or a rewrite);
 *     - a new slot does not repeat a live version of the subject with the same id.
 *   Otherwise it is ignored (counted in `rejected`): the FIRST record in log order that claims an
 *   id, a schema or a slot wins.
 *
 * A writer picks id = highest id seen + 1 and version = highest version of the subject + 1, appends
 * its record, reads the log up to that record's offset, and then looks at the state: if its record
 * won, it answers; if it lost, it re-appends the winning record of the slot (so that compaction, which
 * keeps the LAST record per key, keeps the winner too) and starts over from the new state, where the
 * schema may already be registered (same id returned) or the next id/version is free. Every instance
 * replays the same log in the same order, so all of them agree on every id and version; an instance
 * never answers before it has read its own record (read-your-writes).
 *
 * Like Confluent's, ids of hard-deleted schemas stay bound while their records are in the log (a
 * re-registration gets the old id back; no other schema can get it). Once compaction has removed
 * both the record and its tombstone, the id can be handed out again: Confluent has the same limit.
 */
import { compact, identityOf, parseLevel, type CompatibilityLevel, type Reference } from './avro.ts'

/** A subject's or the global config: every field Confluent's ConfigValue has (see registry.ts for which act). */
export interface RegistryConfig {
  compatibilityLevel?: CompatibilityLevel
  normalize?: boolean
  alias?: string
  aliasForDeks?: string
  validateFields?: boolean
  validateRules?: boolean
  validateNewSchemas?: boolean
  compatibilityGroup?: string
  compatibilityPolicy?: string
  defaultMetadata?: unknown
  overrideMetadata?: unknown
  defaultRuleSet?: unknown
  overrideRuleSet?: unknown
}
export const CONFIG_FIELDS = [
  'alias',
  'aliasForDeks',
  'normalize',
  'validateFields',
  'validateRules',
  'validateNewSchemas',
  'compatibilityLevel',
  'compatibilityPolicy',
  'compatibilityGroup',
  'defaultMetadata',
  'overrideMetadata',
  'defaultRuleSet',
  'overrideRuleSet',
] as const

export const MODES = ['READWRITE', 'READONLY', 'READONLY_OVERRIDE', 'IMPORT'] as const
export type Mode = (typeof MODES)[number]

/** A stored config value as read from the log; unknown or mistyped fields are dropped. */
export function readConfig(value: Record<string, unknown>): RegistryConfig {
  const out: RegistryConfig = {}
  const level = value.compatibilityLevel ?? value.compatibility
  if (level !== undefined && level !== null) out.compatibilityLevel = parseLevel(level)
  for (const k of ['alias', 'aliasForDeks', 'compatibilityGroup', 'compatibilityPolicy'] as const)
    if (typeof value[k] === 'string') out[k] = value[k] as string
  for (const k of ['normalize', 'validateFields', 'validateRules', 'validateNewSchemas'] as const)
    if (typeof value[k] === 'boolean') out[k] = value[k] as boolean
  for (const k of ['defaultMetadata', 'overrideMetadata', 'defaultRuleSet', 'overrideRuleSet'] as const)
    if (value[k] !== undefined && value[k] !== null) out[k] = value[k]
  return out
}

export interface SchemaKey {
  keytype: 'SCHEMA'
  subject: string
  version: number
  magic: 1
}
export interface SchemaValue {
  subject: string
  version: number
  id: number
  schemaType: string
  schema: string
  references?: Reference[]
  deleted: boolean
}

export interface StoredSchema {
  id: number
  schemaType: string
  schema: string
  references: Reference[]
  identity: string
}

export interface VersionEntry {
  id: number
  deleted: boolean
  /** Timestamp (ms) of the record that wrote this version last. */
  ts: number
}

export function schemaKey(subject: string, version: number): string {
  return JSON.stringify({ keytype: 'SCHEMA', subject, version, magic: 1 })
}
export function configKey(subject: string | null): string {
  return subject === null
    ? JSON.stringify({ keytype: 'CONFIG', magic: 0 })
    : JSON.stringify({ keytype: 'CONFIG', subject, magic: 0 })
}
export function modeKey(subject: string | null): string {
  return subject === null
    ? JSON.stringify({ keytype: 'MODE', magic: 0 })
    : JSON.stringify({ keytype: 'MODE', subject, magic: 0 })
}
export function deleteSubjectKey(subject: string): string {
  return JSON.stringify({ keytype: 'DELETE_SUBJECT', subject, magic: 0 })
}
export function schemaValue(v: SchemaValue): string {
  const out: Record<string, unknown> = {
    subject: v.subject,
    version: v.version,
    id: v.id,
    schemaType: v.schemaType,
    schema: v.schema,
  }
  if (v.references && v.references.length > 0) out.references = v.references
  out.deleted = v.deleted
  return JSON.stringify(out)
}

export class RegistryState {
  readonly schemas = new Map<number, StoredSchema>()
  readonly idByIdentity = new Map<string, number>()
  readonly subjects = new Map<string, Map<number, VersionEntry>>()
  readonly subjectConfigs = new Map<string, RegistryConfig>()
  globalConfig: RegistryConfig | undefined
  readonly subjectModes = new Map<string, Mode>()
  globalMode: Mode | undefined
  maxId = 0
  /** Records ignored by the first-wins rule (losers of concurrent writes) or unreadable. */
  rejected = 0

  /** Applies one record of the log. Never throws: a malformed record is counted and skipped. */
  apply(keyText: string | null, valueText: string | null, ts = Date.now()): void {
    if (keyText === null) return
    let key: Record<string, unknown>
    try {
      key = JSON.parse(keyText) as Record<string, unknown>
    } catch {
      this.rejected++
      return
    }
    let value: Record<string, unknown> | null = null
    if (valueText !== null) {
      try {
        value = JSON.parse(valueText) as Record<string, unknown> | null
      } catch {
        this.rejected++
        return
      }
    }
    switch (key.keytype) {
      case 'SCHEMA':
        return this.applySchema(key, value, ts)
      case 'CONFIG':
        return this.applyConfig(key, value)
      case 'MODE':
        return this.applyMode(key, value)
      case 'DELETE_SUBJECT':
        return this.applyDeleteSubject(key, value)
      default:
        return
    }
  }

  private applySchema(key: Record<string, unknown>, value: Record<string, unknown> | null, ts: number): void {
    const subject = key.subject
    const version = key.version
    if (typeof subject !== 'string' || typeof version !== 'number') {
      this.rejected++
      return
    }
    const versions = this.subjects.get(subject)
    if (value === null) {
      // Hard delete (tombstone).
      versions?.delete(version)
      if (versions && versions.size === 0) this.subjects.delete(subject)
      return
    }
    const id = value.id
    const schema = value.schema
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || typeof schema !== 'string') {
      this.rejected++
      return
    }
    const schemaType = typeof value.schemaType === 'string' && value.schemaType !== '' ? value.schemaType : 'AVRO'
    const references = Array.isArray(value.references) ? (value.references as Reference[]) : []
    const identity = identityOf(schemaType, schema, references)
    const deleted = value.deleted === true

    const bound = this.schemas.get(id)
    if (bound && bound.identity !== identity) return this.reject()
    const known = this.idByIdentity.get(identity)
    if (known !== undefined && known !== id) return this.reject()
    const slot = versions?.get(version)
    if (slot && slot.id !== id) return this.reject()
    if (!slot && versions) {
      for (const e of versions.values()) if (e.id === id && !e.deleted && !deleted) return this.reject()
    }

    if (!bound) {
      this.schemas.set(id, { id, schemaType, schema: compact(schema), references, identity })
      this.idByIdentity.set(identity, id)
    }
    if (id > this.maxId) this.maxId = id
    let vs = versions
    if (!vs) {
      vs = new Map()
      this.subjects.set(subject, vs)
    }
    vs.set(version, { id, deleted, ts })
  }

  private reject(): void {
    this.rejected++
  }

  private applyConfig(key: Record<string, unknown>, value: Record<string, unknown> | null): void {
    const subject = typeof key.subject === 'string' && key.subject !== '' ? key.subject : null
    let config: RegistryConfig | undefined
    if (value !== null) {
      try {
        config = readConfig(value)
      } catch {
        this.rejected++
        return
      }
    }
    if (subject === null) this.globalConfig = config
    else if (config === undefined) this.subjectConfigs.delete(subject)
    else this.subjectConfigs.set(subject, config)
  }

  private applyMode(key: Record<string, unknown>, value: Record<string, unknown> | null): void {
    const subject = typeof key.subject === 'string' && key.subject !== '' ? key.subject : null
    let mode: Mode | undefined
    if (value !== null) {
      if (!(MODES as readonly unknown[]).includes(value.mode)) {
        this.rejected++
        return
      }
      mode = value.mode as Mode
    }
    if (subject === null) this.globalMode = mode
    else if (mode === undefined) this.subjectModes.delete(subject)
    else this.subjectModes.set(subject, mode)
  }

  private applyDeleteSubject(key: Record<string, unknown>, value: Record<string, unknown> | null): void {
    const subject = key.subject
    if (typeof subject !== 'string' || value === null) return
    const upTo = typeof value.version === 'number' ? value.version : Number.MAX_SAFE_INTEGER
    const versions = this.subjects.get(subject)
    if (!versions) return
    for (const [v, e] of versions) if (v <= upTo) e.deleted = true
  }

  // ---- queries -----------------------------------------------------------------------------

  /** Versions of a subject, ascending; soft-deleted ones only when asked. */
  versionsOf(
    subject: string,
    includeDeleted = false,
  ): Array<{ version: number; id: number; deleted: boolean; ts: number }> {
    const vs = this.subjects.get(subject)
    if (!vs) return []
    return [...vs.entries()]
      .filter(([, e]) => includeDeleted || !e.deleted)
      .map(([version, e]) => ({ version, id: e.id, deleted: e.deleted, ts: e.ts }))
      .sort((a, b) => a.version - b.version)
  }

  maxVersion(subject: string): number {
    const vs = this.subjects.get(subject)
    return vs ? Math.max(0, ...vs.keys()) : 0
  }

  /** Subjects and versions that use a schema id (the slots, not the binding: hard delete removes them). */
  usesOf(id: number, includeDeleted = false): Array<{ subject: string; version: number }> {
    const out: Array<{ subject: string; version: number }> = []
    for (const [subject, vs] of this.subjects) {
      for (const [version, e] of vs) if (e.id === id && (includeDeleted || !e.deleted)) out.push({ subject, version })
    }
    return out.sort((a, b) => (a.subject === b.subject ? a.version - b.version : a.subject < b.subject ? -1 : 1))
  }
}
