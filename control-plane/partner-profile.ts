/**
 * A partner's profile is the partner-profile Avro contract (schemas/avro/partner-profile.avsc) in
 * JSON: every field the caller sends is checked against it (a fault names `profile.<json pointer
 * as dots>`), fields the contract does not declare are refused, and the platform fills in what it
 * owns (partnerId, sequence, occurredAt) and what it can derive:
 *
 *   legalName            the organization's name
 *   partnerType, tier    OTHER   (the contract's own enum defaults)
 *   status               UNKNOWN (the contract's own enum default)
 *   headquartersCountry  ZZ      (the ISO 3166 user-assigned code CLDR uses for "unknown region")
 *
 * so that a partner created with a name only is still a valid partner-profile event. Dates are
 * accepted as YYYY-MM-DD (certifications), as json-avro.ts converts them.
 */
import { createConverter, type Converter } from '../connectors/source/json-avro.ts'
import { uuidv7 } from '../schemas/headers.ts'
import { contractSchema } from '../schemas/contracts.ts'
import { TOPICS } from '../schemas/topics.ts'
import type { FieldError } from './errors.ts'
import type { OutboxEntry } from './types.ts'

export const PARTNER_PROFILE_TOPIC = TOPICS.partnerProfiles.name
/** ce_type of every partner-profile event (each carries the full profile after the change). */
export const PARTNER_PROFILE_CHANGED = TOPICS.partnerProfiles.eventTypes[0]

/** Fields of the contract the platform sets; a profile must not carry them. */
export const PLATFORM_PROFILE_FIELDS = ['partnerId', 'sequence', 'occurredAt'] as const

export const UNKNOWN_COUNTRY = 'ZZ'

let converter: Converter | undefined
let enumDefaults: Record<string, string> | undefined

function contract(): { converter: Converter; enumDefaults: Record<string, string> } {
  if (!converter || !enumDefaults) {
    const schema = JSON.parse(contractSchema('partner-profile')) as { fields: Array<{ name: string; type: unknown }> }
    converter = createConverter(schema)
    enumDefaults = {}
    for (const f of schema.fields) {
      const t = f.type as { type?: unknown; default?: unknown }
      if (t && typeof t === 'object' && t.type === 'enum' && typeof t.default === 'string')
        enumDefaults[f.name] = t.default
    }
  }
  return { converter, enumDefaults }
}

/** `/contacts/0/email` → `profile.contacts.0.email` (RFC 6901 unescaped). */
function fieldName(pointer: string): string {
  const parts = pointer
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
  return ['profile', ...parts].join('.')
}

export interface ProfileSubject {
  _id: string
  name: string
}

/**
 * The partner-profile event value of a partner after a change, or the faults of its profile.
 * `sequence` is the organization's version after the change; `at` when it changed.
 */
export function partnerProfileValue(
  org: ProfileSubject,
  profile: Record<string, unknown>,
  sequence: number,
  at: Date,
): { value: Record<string, unknown>; errors: [] } | { value: undefined; errors: FieldError[] } {
  const { converter: conv, enumDefaults: enums } = contract()
  const errors: FieldError[] = []
  for (const f of PLATFORM_PROFILE_FIELDS)
    if (f in profile) errors.push({ field: `profile.${f}`, message: 'is set by the platform; leave it out' })
  const input: Record<string, unknown> = {
    legalName: org.name,
    headquartersCountry: UNKNOWN_COUNTRY,
    ...enums,
    ...profile,
    partnerId: org._id,
    sequence,
    occurredAt: at.getTime(),
  }
  const r = conv.convert(input)
  for (const fault of r.faults) {
    const field = fieldName(fault.path)
    if (!PLATFORM_PROFILE_FIELDS.some((f) => field === `profile.${f}`)) errors.push({ field, message: fault.message })
  }
  if (errors.length > 0) return { value: undefined, errors }
  return { value: r.value as Record<string, unknown>, errors: [] }
}

/** The outbox entry announcing a partner's profile after a change. */
export function partnerProfileEntry(
  partnerId: string,
  value: Record<string, unknown>,
  sequence: number,
  at: Date,
  topic: string = PARTNER_PROFILE_TOPIC,
): OutboxEntry {
  return {
    eventId: uuidv7(at.getTime()),
    topic,
    type: PARTNER_PROFILE_CHANGED,
    key: { partnerId },
    value,
    sequence,
    occurredAt: at,
  }
}
