/**
 * Pinned reader schemas against a new writer schema. A subscription pins a schema version per event
 * type (subscriptions.schemaVersions); its partner receives every event resolved to that reader schema
 * by Avro schema resolution. Before a new version of a topic's value subject is registered, every
 * pinned reader of that topic's event types must be able to read it. Policy `refuse`: the registry
 * answers 409 (Confluent's INCOMPATIBLE_SCHEMA error_code, so Confluent clients treat it as any
 * incompatible schema) naming the subscriptions and the fields at fault. Policy `flag`: the version is
 * registered and each affected subscription carries a schema issue (visible on GET /subscriptions/{id}),
 * and its records that cannot be resolved go to its dead letters instead of being delivered.
 *
 * The registry calls this through its BeforeRegisterHook (wired in cli/platform.ts), so schemas/ does
 * not depend on the control plane.
 */
import type avro from 'avsc'
import type { Logger } from '../common/logger.ts'
import { readFailure } from '../schemas/registry/avro.ts'
import { RegistryError, INCOMPATIBLE_SCHEMA } from '../schemas/registry/errors.ts'
import type { BeforeRegisterHook, RegisterCandidate } from '../schemas/registry/registry.ts'
import { valueSubject, type TopicSpec } from '../schemas/topics.ts'
import { pinsOf } from './schema-pins.ts'
import type { Collections } from './store.ts'
import type { SchemaIssue } from './types.ts'

export type PinnedReaderPolicy = 'refuse' | 'flag'

export interface PinnedReaderConflict {
  subscriptionId: string
  name: string
  eventType: string
  pinnedVersion: number
  /** Each unreadable field with the reason (or the resolver's reason when it is not about one field). */
  fields: string[]
}

interface AvroField {
  name: string
  type: avro.Type
  aliases: string[]
  defaultValue(): unknown
}

/** Why a reader cannot read data written with the writer, per top-level field (empty: it can). */
export function unreadableFields(reader: avro.Type, writer: avro.Type): string[] {
  const why = readFailure(reader, writer)
  if (why === null) return []
  const r = reader as unknown as { typeName: string; fields?: AvroField[] }
  const w = writer as unknown as { typeName: string; fields?: AvroField[] }
  if (r.typeName !== 'record' || w.typeName !== 'record' || !r.fields || !w.fields) return [why]
  const out: string[] = []
  for (const f of r.fields) {
    const wf = w.fields.find((x) => x.name === f.name || f.aliases.includes(x.name))
    if (!wf) {
      if (f.defaultValue() === undefined)
        out.push(`${f.name}: missing from the new schema and without a default in the pinned version`)
      continue
    }
    const fieldWhy = readFailure(f.type, wf.type)
    if (fieldWhy) out.push(`${f.name}: ${fieldWhy}`)
  }
  return out.length > 0 ? out : [why]
}

/** The subscriptions whose pinned reader of the candidate's topic cannot read it. */
export async function pinnedReaderConflicts(
  cols: Pick<Collections, 'subscriptions'>,
  topics: readonly TopicSpec[],
  c: RegisterCandidate,
): Promise<PinnedReaderConflict[]> {
  const topic = topics.find((t) => valueSubject(t.name) === c.subject)
  if (!topic) return []
  const types = [...topic.eventTypes, topic.name]
  const subs = await cols.subscriptions.find({ eventTypes: { $in: types } }).toArray()
  const out: PinnedReaderConflict[] = []
  for (const s of subs) {
    for (const [eventType, version] of Object.entries(pinsOf(s))) {
      if (!types.includes(eventType)) continue
      const reader = c.readerOf(version)
      if (!reader) continue
      const fields = unreadableFields(reader, c.type)
      if (fields.length > 0)
        out.push({ subscriptionId: s._id, name: s.name, eventType, pinnedVersion: version, fields })
    }
  }
  return out
}

export function describeConflicts(subject: string, version: number, conflicts: PinnedReaderConflict[]): string {
  const each = conflicts.map(
    (x) =>
      `subscription ${x.subscriptionId} ("${x.name}") pins ${x.eventType} version ` +
      `${x.pinnedVersion}: ${x.fields.join('; ')}`,
  )
  return (
    `Schema being registered is incompatible with a pinned reader schema for ` +
    `subject "${subject}" (it would be version ${version}), details: ` +
    `[${each.join(', ')}]`
  )
}

/** The registry hook: refuse (409) or flag the affected subscriptions, by policy. */
export function pinnedReaderCheck(opts: {
  cols: Pick<Collections, 'subscriptions'>
  topics: readonly TopicSpec[]
  policy: PinnedReaderPolicy
  logger: Logger
}): BeforeRegisterHook {
  const log = opts.logger.child({ component: 'pinned-readers' })
  return async (c) => {
    const conflicts = await pinnedReaderConflicts(opts.cols, opts.topics, c)
    if (conflicts.length === 0) return
    const message = describeConflicts(c.subject, c.version, conflicts)
    if (opts.policy === 'refuse') {
      log.warn('new schema refused: a pinned partner could not read it', {
        subject: c.subject,
        subscriptions: conflicts.map((x) => x.subscriptionId),
      })
      throw new RegistryError(409, INCOMPATIBLE_SCHEMA, message)
    }
    return async () => {
      const at = new Date()
      for (const x of conflicts) {
        const issue: SchemaIssue = {
          subject: c.subject,
          version: c.version,
          eventType: x.eventType,
          pinnedVersion: x.pinnedVersion,
          fields: x.fields,
          at,
        }
        await opts.cols.subscriptions
          .updateOne({ _id: x.subscriptionId }, { $push: { schemaIssues: issue } })
          .catch((err: unknown) => log.warn('could not flag a subscription', { subscriptionId: x.subscriptionId, err }))
      }
      log.warn('new schema registered; subscriptions whose pinned reader cannot read it are flagged', {
        subject: c.subject,
        version: c.version,
        subscriptions: conflicts.map((x) => x.subscriptionId),
      })
    }
  }
}
