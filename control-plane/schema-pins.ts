/**
 * Pinned schema versions are keyed by event type (`inventory.level.changed`), and a MongoDB document
 * key must not contain '.' (FerretDB refuses it). At rest the keys are percent-encoded ('%' -> %25,
 * '.' -> %2E); `pinsOf` gives the map by event type back. Decoding a map that was never encoded is a
 * no-op (event types hold no '%'), so readers can always go through `pinsOf`.
 */
export function encodePins(pins: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(pins).map(([k, v]) => [k.replaceAll('%', '%25').replaceAll('.', '%2E'), v]))
}

/** The pinned version per event type of a subscription document (stored encoded). */
export function pinsOf(sub: { schemaVersions?: Record<string, number> | undefined }): Record<string, number> {
  return Object.fromEntries(Object.entries(sub.schemaVersions ?? {}).map(([k, v]) => [k.replaceAll('%2E', '.').replaceAll('%25', '%'), v]))
}
