/**
 * The config schema every source plug-in declares: each setting with a doc string, a type and a
 * default (or required), validated as a whole so that a ConfigError names every bad setting.
 */
import { ConfigError } from '../../common/errors.ts'

export type SettingType = 'string' | 'integer' | 'boolean' | 'string-map' | 'object'

export interface Setting {
  doc: string
  type: SettingType
  default?: unknown
  /** integer bounds */
  min?: number
  max?: number
  /** string: one of these values */
  enum?: readonly string[]
}

export type ConfigSchema = Record<string, Setting>

/**
 * The settings of a source that publishes one event type: the type (its contract) and the topic, which
 * can only be the type's declared topic (the setting exists to say so, and for configs that name it).
 */
export function eventTypeSettings(eventTypeDoc: string): ConfigSchema {
  return {
    eventType: { doc: eventTypeDoc, type: 'string', default: 'inventory.level.changed' },
    topic: {
      doc: 'Topic to write: the declared topic of eventType (no other is accepted); empty: that topic.',
      type: 'string',
      default: '',
    },
  }
}

/** One bad setting: its name and what is wrong with it. */
export interface SettingFault {
  field: string
  message: string
}

/**
 * Checks a config against the schema: the config with defaults filled in, or every fault by
 * setting name (never both). `validateConfig` throws them as one ConfigError (context.fields).
 */
export function checkConfig<C>(
  plugin: string,
  schema: ConfigSchema,
  raw: unknown,
): { config: C; faults: [] } | { config: undefined; faults: SettingFault[] } {
  const faults: SettingFault[] = []
  const fault = (field: string, message: string) => faults.push({ field, message })
  if (raw !== undefined && raw !== null && (typeof raw !== 'object' || Array.isArray(raw)))
    return { config: undefined, faults: [{ field: '', message: 'must be an object' }] }
  const input = (raw ?? {}) as Record<string, unknown>
  const out: Record<string, unknown> = {}
  for (const [key, s] of Object.entries(schema)) {
    const v = input[key]
    if (v === undefined) {
      if (s.default === undefined) fault(key, `is required (${s.doc})`)
      else out[key] = s.default
      continue
    }
    switch (s.type) {
      case 'string':
        if (typeof v !== 'string' || (v === '' && s.default !== '')) fault(key, 'must be a non-empty string')
        else if (s.enum && !s.enum.includes(v)) fault(key, `must be one of ${s.enum.join(', ')}`)
        break
      case 'integer':
        if (typeof v !== 'number' || !Number.isInteger(v)) fault(key, 'must be an integer')
        else if ((s.min !== undefined && v < s.min) || (s.max !== undefined && v > s.max))
          fault(key, `must be between ${s.min ?? '-∞'} and ${s.max ?? '∞'}`)
        break
      case 'boolean':
        if (typeof v !== 'boolean') fault(key, 'must be true or false')
        break
      case 'string-map':
        if (
          v === null ||
          typeof v !== 'object' ||
          Array.isArray(v) ||
          Object.values(v).some((x) => typeof x !== 'string')
        )
          fault(key, 'must be an object of strings')
        break
      case 'object':
        if (v === null || typeof v !== 'object' || Array.isArray(v)) fault(key, 'must be an object')
        break
    }
    out[key] = v
  }
  for (const key of Object.keys(input))
    if (!(key in schema)) fault(key, `is not a setting of ${plugin} (known: ${Object.keys(schema).join(', ')})`)
  return faults.length > 0 ? { config: undefined, faults } : { config: out as C, faults: [] }
}

/** The JSON Schema of one setting's type, as checkConfig checks it. */
function settingJsonSchema(s: Setting): Record<string, unknown> {
  switch (s.type) {
    case 'string':
      return { type: 'string', ...(s.default === '' ? {} : { minLength: 1 }), ...(s.enum ? { enum: [...s.enum] } : {}) }
    case 'integer':
      return {
        type: 'integer',
        ...(s.min !== undefined ? { minimum: s.min } : {}),
        ...(s.max !== undefined ? { maximum: s.max } : {}),
      }
    case 'boolean':
      return { type: 'boolean' }
    case 'string-map':
      return { type: 'object', additionalProperties: { type: 'string' } }
    case 'object':
      return { type: 'object' }
  }
}

/**
 * The JSON Schema of what checkConfig accepts (the management API document's per-kind `config`): a setting without a
 * default is required, an unknown one refused, a string non-empty unless its default is empty. `narrow` adds what a
 * plug-in checks beyond the types (e.g. eventType's closed list); `secrets` are write-only.
 */
export function configJsonSchema(
  schema: ConfigSchema,
  secrets: readonly string[] = [],
  narrow: Record<string, Record<string, unknown>> = {},
): Record<string, unknown> {
  const properties: Record<string, unknown> = {}
  for (const [key, s] of Object.entries(schema)) {
    const base = settingJsonSchema(s)
    properties[key] = {
      ...base,
      ...narrow[key],
      // the default in words only: the request validator would write a `default` into the stored config
      description: s.default === undefined ? s.doc : `${s.doc} Default: ${JSON.stringify(s.default)}.`,
      ...(secrets.includes(key) ? { writeOnly: true } : {}),
    }
  }
  return {
    type: 'object',
    additionalProperties: false,
    required: Object.entries(schema)
      .filter(([, s]) => s.default === undefined)
      .map(([k]) => k),
    properties,
  }
}

export function validateConfig<C>(plugin: string, schema: ConfigSchema, raw: unknown): C {
  const r = checkConfig<C>(plugin, schema, raw)
  if (r.faults.length > 0) {
    const errors = r.faults.map((f) => (f.field ? `${f.field} ${f.message}` : `config ${f.message}`))
    throw new ConfigError(`${plugin}: invalid config: ${errors.join('; ')}`, { plugin, errors, fields: r.faults })
  }
  return r.config as C
}
