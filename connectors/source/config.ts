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
}

export type ConfigSchema = Record<string, Setting>

export function validateConfig<C>(plugin: string, schema: ConfigSchema, raw: unknown): C {
  const errors: string[] = []
  const input = (raw ?? {}) as Record<string, unknown>
  if (typeof input !== 'object' || Array.isArray(input)) throw new ConfigError(`${plugin}: config must be an object`, { plugin })
  const out: Record<string, unknown> = {}
  for (const [key, s] of Object.entries(schema)) {
    const v = input[key]
    if (v === undefined) {
      if (s.default === undefined) errors.push(`${key} is required (${s.doc})`)
      else out[key] = s.default
      continue
    }
    switch (s.type) {
      case 'string':
        if (typeof v !== 'string' || (v === '' && s.default !== '')) errors.push(`${key} must be a non-empty string`)
        break
      case 'integer':
        if (typeof v !== 'number' || !Number.isInteger(v)) errors.push(`${key} must be an integer`)
        else if ((s.min !== undefined && v < s.min) || (s.max !== undefined && v > s.max)) errors.push(`${key} must be between ${s.min ?? '-∞'} and ${s.max ?? '∞'}`)
        break
      case 'boolean':
        if (typeof v !== 'boolean') errors.push(`${key} must be true or false`)
        break
      case 'string-map':
        if (v === null || typeof v !== 'object' || Array.isArray(v) || Object.values(v).some((x) => typeof x !== 'string')) errors.push(`${key} must be an object of strings`)
        break
      case 'object':
        if (v === null || typeof v !== 'object' || Array.isArray(v)) errors.push(`${key} must be an object`)
        break
    }
    out[key] = v
  }
  for (const key of Object.keys(input)) if (!(key in schema)) errors.push(`${key} is not a setting of ${plugin} (known: ${Object.keys(schema).join(', ')})`)
  if (errors.length > 0) throw new ConfigError(`${plugin}: invalid config: ${errors.join('; ')}`, { plugin, errors })
  return out as C
}
