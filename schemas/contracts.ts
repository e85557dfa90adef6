/**
 * The event contracts: the Avro schemas in schemas/avro/, loaded as strings (exactly as they are
 * registered) and the released versions kept in schemas/released/<name>/v<N>.avsc, which every new
 * version must be able to read (BACKWARD evolution, checked by test/unit/schemas-contracts.test.ts).
 */
import fs from 'node:fs'
import path from 'node:path'
import { PROJECT_ROOT } from '../common/paths.ts'

export const AVRO_DIR = path.join(PROJECT_ROOT, 'schemas', 'avro')
export const RELEASED_DIR = path.join(PROJECT_ROOT, 'schemas', 'released')

export const CONTRACT_NAMES = [
  'inventory-level',
  'inventory-level-key',
  'deal-registration',
  'deal-registration-key',
  'partner-profile',
  'partner-profile-key',
  'lead',
  'lead-key',
  'subscription-health',
  'subscription-health-key',
] as const
export type ContractName = (typeof CONTRACT_NAMES)[number]

const cache = new Map<string, string>()

/** The schema text of a contract, minified (the form registered in the schema registry). */
export function contractSchema(name: ContractName): string {
  let s = cache.get(name)
  if (s === undefined) {
    s = JSON.stringify(JSON.parse(fs.readFileSync(path.join(AVRO_DIR, `${name}.avsc`), 'utf8')))
    cache.set(name, s)
  }
  return s
}

/** Released versions of a contract, oldest first: [{ version, schema }]. */
export function releasedVersions(name: string): Array<{ version: number; schema: string }> {
  const dir = path.join(RELEASED_DIR, name)
  if (!fs.existsSync(dir)) return []
  return fs
    .readdirSync(dir)
    .map((f) => /^v(\d+)\.avsc$/.exec(f))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({
      version: Number(m[1]),
      schema: JSON.stringify(JSON.parse(fs.readFileSync(path.join(dir, m[0]), 'utf8'))),
    }))
    .sort((a, b) => a.version - b.version)
}
