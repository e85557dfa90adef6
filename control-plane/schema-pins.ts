/**
 * Pinned schema versions are keyed by event type (`inventory.level.changed`): stored with encoded keys
 * (stored-keys.ts); `pinsOf` gives the map by event type back, also of a map never encoded.
 */
import { decodeKeys, encodeKeys } from './stored-keys.ts'

export function encodePins(pins: Record<string, number>): Record<string, number> {
  return encodeKeys(pins)
}

/** The pinned version per event type of a subscription document (stored encoded). */
export function pinsOf(sub: { schemaVersions?: Record<string, number> | undefined }): Record<string, number> {
  return decodeKeys(sub.schemaVersions ?? {})
}
