/**
 * The registry's config (compatibility level, normalize, ...) and mode (READWRITE, READONLY, IMPORT),
 * global and per subject, as Confluent's ConfigResource and ModeResource: read from the replicated
 * state, written through the log one write at a time with the registry's other writes (registry.ts).
 */
import { DEFAULT_COMPATIBILITY, parseLevel, type CompatibilityLevel } from './avro.ts'
import { errors } from './errors.ts'
import { assertValidSubject, type SchemaLog } from './requests.ts'
import {
  CONFIG_FIELDS,
  MODES,
  configKey,
  modeKey,
  readConfig,
  type Mode,
  type RegistryConfig,
  type RegistryState,
} from './state.ts'

const DEFAULT_MODE: Mode = 'READWRITE'

export class RegistrySettings {
  constructor(
    private readonly log: SchemaLog,
    /** The registry's one-write-at-a-time (registry.ts). */
    private readonly serialize: <T>(op: () => Promise<T>) => Promise<T>,
    /** The subjects with a live version (IMPORT needs none unless forced). */
    private readonly liveSubjects: () => string[],
  ) {}

  private get state(): RegistryState {
    return this.log.state
  }

  private configInScope(subject: string | null): RegistryConfig {
    return (subject === null ? undefined : this.state.subjectConfigs.get(subject)) ?? this.state.globalConfig ?? {}
  }

  effectiveLevel(subject: string): CompatibilityLevel {
    return (
      this.state.subjectConfigs.get(subject)?.compatibilityLevel ??
      this.state.globalConfig?.compatibilityLevel ??
      DEFAULT_COMPATIBILITY
    )
  }

  normalizeFor(subject: string, asked: boolean | undefined): boolean {
    return asked === true || this.configInScope(subject).normalize === true
  }

  modeOf(subject: string | null): Mode {
    return (
      (subject === null ? undefined : this.state.subjectModes.get(subject)) ?? this.state.globalMode ?? DEFAULT_MODE
    )
  }

  assertWritable(subject: string | null): void {
    const mode = this.modeOf(subject)
    if (mode === 'READONLY' || mode === 'READONLY_OVERRIDE')
      throw errors.notPermitted(`Subject ${subject ?? '(global)'} is in read-only mode`)
  }

  // ---- config --------------------------------------------------------------------------------

  getGlobalConfig(): RegistryConfig {
    return withLevel(
      this.state.globalConfig ?? {},
      this.state.globalConfig?.compatibilityLevel ?? DEFAULT_COMPATIBILITY,
    )
  }

  getSubjectConfig(subject: string, defaultToGlobal: boolean): RegistryConfig {
    const c = this.state.subjectConfigs.get(subject)
    if (c) return ordered(c)
    if (defaultToGlobal) return this.getGlobalConfig()
    throw errors.subjectCompatibilityNotConfigured(subject)
  }

  /**
   * PUT /config[/{subject}]: the fields given replace the stored ones, the others are kept (as
   * Confluent's ConfigValue.update). Answers the resulting config with `compatibility` for the level,
   * as Confluent's ConfigUpdateRequest.
   */
  setConfig(subject: string | null, body: unknown): Promise<Record<string, unknown>> {
    if (subject !== null) assertValidSubject(subject)
    if (body === null || typeof body !== 'object' || Array.isArray(body))
      throw errors.invalidSchema('the config must be a JSON object')
    const raw = body as Record<string, unknown>
    const update: RegistryConfig = {}
    const level = raw.compatibility ?? raw.compatibilityLevel
    if (level !== undefined && level !== null) update.compatibilityLevel = parseLevel(level)
    for (const k of ['alias', 'aliasForDeks', 'compatibilityGroup', 'compatibilityPolicy'] as const) {
      if (raw[k] === undefined || raw[k] === null) continue
      if (typeof raw[k] !== 'string') throw errors.invalidConfig(`${k} must be a string`)
      update[k] = raw[k] as string
    }
    for (const k of ['normalize', 'validateFields', 'validateRules', 'validateNewSchemas'] as const) {
      if (raw[k] === undefined || raw[k] === null) continue
      if (typeof raw[k] !== 'boolean') throw errors.invalidConfig(`${k} must be true or false`)
      update[k] = raw[k] as boolean
    }
    for (const k of ['defaultMetadata', 'overrideMetadata', 'defaultRuleSet', 'overrideRuleSet'] as const) {
      if (raw[k] === undefined || raw[k] === null) continue
      if (typeof raw[k] !== 'object' || Array.isArray(raw[k])) throw errors.invalidConfig(`${k} must be a JSON object`)
      update[k] = raw[k]
    }
    return this.serialize(async () => {
      this.assertWritable(subject)
      const old = subject === null ? this.state.globalConfig : this.state.subjectConfigs.get(subject)
      const merged = ordered({ ...(old ?? {}), ...update })
      await this.log.append(configKey(subject), JSON.stringify(merged))
      const { compatibilityLevel, ...rest } = merged
      return compatibilityLevel === undefined ? rest : { compatibility: compatibilityLevel, ...rest }
    })
  }

  deleteConfig(subject: string | null): Promise<RegistryConfig> {
    return this.serialize(async () => {
      this.assertWritable(subject)
      if (subject === null) {
        const prev = this.getGlobalConfig()
        await this.log.append(configKey(null), null)
        return prev
      }
      const c = this.state.subjectConfigs.get(subject)
      if (!c) {
        if (this.state.versionsOf(subject, true).length === 0) throw errors.subjectNotFound(subject)
        throw errors.subjectCompatibilityNotConfigured(subject)
      }
      await this.log.append(configKey(subject), null)
      return ordered(c)
    })
  }

  // ---- mode ----------------------------------------------------------------------------------

  getMode(subject: string | null, defaultToGlobal: boolean): { mode: Mode } {
    if (subject === null) return { mode: this.modeOf(null) }
    const m = this.state.subjectModes.get(subject)
    if (m) return { mode: m }
    if (defaultToGlobal) return { mode: this.modeOf(null) }
    throw errors.subjectModeNotConfigured(subject)
  }

  /**
   * PUT /mode[/{subject}]. Switching to IMPORT needs no live subject in scope unless force=true
   * (Confluent also hard-deletes the soft-deleted versions then; we leave them, see the docs).
   */
  setMode(subject: string | null, body: unknown, force: boolean): Promise<{ mode: Mode }> {
    if (subject !== null) assertValidSubject(subject)
    const raw = body !== null && typeof body === 'object' ? (body as { mode?: unknown }).mode : undefined
    const mode = typeof raw === 'string' ? raw.toUpperCase() : raw
    if (!(MODES as readonly unknown[]).includes(mode)) throw errors.invalidMode(raw)
    return this.serialize(async () => {
      if (mode === 'IMPORT' && this.modeOf(subject) !== 'IMPORT' && !force) {
        const live = subject === null ? this.liveSubjects() : this.state.versionsOf(subject).length > 0 ? [subject] : []
        if (live.length > 0) throw errors.notPermitted('Cannot import since found existing subjects')
      }
      await this.log.append(modeKey(subject), JSON.stringify(subject === null ? { mode } : { subject, mode }))
      return { mode: mode as Mode }
    })
  }

  deleteMode(subject: string | null): Promise<{ mode: Mode }> {
    return this.serialize(async () => {
      const prev = subject === null ? this.state.globalMode : this.state.subjectModes.get(subject)
      if (subject !== null && prev === undefined) throw errors.subjectModeNotConfigured(subject)
      await this.log.append(modeKey(subject), null)
      return { mode: prev ?? DEFAULT_MODE }
    })
  }
}

/** A config with its fields in Confluent's order (stable answers and log records). */
function ordered(c: RegistryConfig): RegistryConfig {
  const out: Record<string, unknown> = {}
  for (const k of CONFIG_FIELDS) if (c[k] !== undefined) out[k] = c[k]
  return readConfig(out) && (out as RegistryConfig)
}

function withLevel(c: RegistryConfig, level: CompatibilityLevel): RegistryConfig {
  return ordered({ ...c, compatibilityLevel: level })
}
