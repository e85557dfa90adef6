/**
 * Maps whose keys are user data (event types such as `inventory.level.changed`, row-filter field paths
 * such as `endCustomer.country`) cannot be stored as document keys as they are: a MongoDB key must not
 * contain '.' (FerretDB refuses it, MongoDB discourages it). At rest such keys are percent-encoded
 * ('%' -> %25, '.' -> %2E). Decoding a map that was never encoded is a no-op (the keys hold no '%').
 */
import type { Entitlement, RowFilter } from './types.ts'

export const encodeKey = (k: string): string => k.replaceAll('%', '%25').replaceAll('.', '%2E')
export const decodeKey = (k: string): string => k.replaceAll('%2E', '.').replaceAll('%25', '%')

export function encodeKeys<T>(map: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(map).map(([k, v]) => [encodeKey(k), v]))
}

export function decodeKeys<T>(map: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(map).map(([k, v]) => [decodeKey(k), v]))
}

/** A row filter as stored (undefined stays undefined). */
export const storedFilter = (f: RowFilter | undefined): RowFilter | undefined =>
  f === undefined ? undefined : encodeKeys(f)
/** A row filter as the API and the checks see it. */
export const filterOf = (f: RowFilter | undefined): RowFilter | undefined =>
  f === undefined ? undefined : decodeKeys(f)

export const storedEntitlements = (ents: Entitlement[]): Entitlement[] =>
  ents.map((e) => (e.filter ? { ...e, filter: encodeKeys(e.filter) } : e))
export const entitlementsOf = (ents: Entitlement[]): Entitlement[] =>
  ents.map((e) => (e.filter ? { ...e, filter: decodeKeys(e.filter) } : e))
