/**
 * A sink config's secret settings (SinkPlugin.secretPaths, dotted paths such as `auth.token`): sealed
 * at rest with the key ring, opened for the sink only, left out of what the API returns.
 */
import type { SecretBox } from '../common/secret-box.ts'

/** Opens sinks' sealed secrets (the control plane's key ring: a ControlPlane is one). */
export interface SinkSecrets {
  readonly box: Pick<SecretBox, 'open'>
}

/** The value at a dotted path, or undefined. */
export function configValue(o: unknown, path: string): unknown {
  return path
    .split('.')
    .reduce<unknown>((v, k) => (v && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined), o)
}

/** Sets the value at a dotted path whose parents exist (undefined deletes it). */
export function setConfigValue(o: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.')
  let cur = o
  for (const k of keys.slice(0, -1)) {
    if (!cur[k] || typeof cur[k] !== 'object') return
    cur = cur[k] as Record<string, unknown>
  }
  if (value === undefined) delete cur[keys[keys.length - 1]!]
  else cur[keys[keys.length - 1]!] = value
}

/** A copy of the config with each secret set at `paths` replaced by `fn` of it. */
function mapSecrets<S>(
  config: S,
  paths: readonly string[],
  fn: (value: string, path: string) => string | undefined,
): S {
  const out = structuredClone(config) as unknown as Record<string, unknown>
  for (const path of paths) {
    const v = configValue(out, path)
    if (typeof v === 'string') setConfigValue(out, path, fn(v, path))
  }
  return out as unknown as S
}

/** The config with its secrets opened (for the sink, never for an answer). */
export function openSecrets<S>(config: S, paths: readonly string[], box: Pick<SecretBox, 'open'>): S {
  return mapSecrets(config, paths, (v) => box.open(v))
}

/**
 * The config with its secrets sealed; a secret left out keeps its value in `previous` (the stored config of the same
 * type).
 */
export function sealSecrets<S>(config: S, paths: readonly string[], box: Pick<SecretBox, 'seal'>, previous?: S): S {
  const out = mapSecrets(config, paths, (v) => box.seal(v)) as unknown as Record<string, unknown>
  for (const path of paths) {
    const old =
      previous === undefined || typeof configValue(out, path) === 'string' ? undefined : configValue(previous, path)
    if (typeof old === 'string') setConfigValue(out, path, old)
  }
  return out as unknown as S
}

/** The config without its secrets, and the paths of those that are set. */
export function withoutSecrets<S>(config: S, paths: readonly string[]): { config: S; set: string[] } {
  const set: string[] = []
  const out = structuredClone(config) as unknown as Record<string, unknown>
  for (const path of paths) {
    if (configValue(out, path) === undefined) continue
    setConfigValue(out, path, undefined)
    set.push(path)
  }
  return { config: out as unknown as S, set }
}
