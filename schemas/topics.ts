/**
 * The one declaration of Distributary's topics: name, partitions, key, cleanup policy, the key and
 * value contracts and the event types they carry. Subjects follow Confluent's TopicNameStrategy
 * (`<topic>-key`, `<topic>-value`). `ensureTopics` creates the missing ones at platform start.
 *
 * State topics (a full snapshot per key: inventory levels, partner profiles) are compacted, so a new
 * subscriber can bootstrap from the latest value per key. Deal registrations also carry the full
 * state of the deal in every event, but the lifecycle history matters to partners (and replays), so
 * that topic keeps everything for a bounded retention instead.
 */
import { createTopicsReady } from '../common/kafka/index.ts'
import type { Admin, ITopicConfig } from '../common/kafka/index.ts'
import { contractSchema, type ContractName } from './contracts.ts'

export type CleanupPolicy = 'compact' | 'delete' | 'compact,delete'

export interface TopicSpec {
  name: string
  partitions: number
  cleanupPolicy: CleanupPolicy
  /** Extra topic configs (retention and the like). */
  config: Record<string, string>
  /** What the key is made of, for readers of this file. Every key carries its owner (docs/tenancy.md). */
  key: string
  /**
   * Who may write the topic: `publishers` (ingestion and sources, stamped with the publisher) or
   * `platform` (only the platform itself, e.g. the outbox of partner profiles: no API route or source).
   */
  writtenBy: 'publishers' | 'platform'
  /**
   * A record of this topic reaches only the partner its value's field of this name names (and its
   * publisher's own subscriptions): a deal registration belongs to the partner that registered it, a
   * lead to the partner it is assigned to, whatever the grants say (connectors/sink/entitlement.ts).
   */
  audience?: 'partnerId'
  /**
   * The platform's reports to a partner about its own subscriptions (an audience topic): every partner
   * may subscribe to them without a grant, and receives only those addressed to it.
   */
  noGrant?: true
  keySchema: ContractName
  valueSchema: ContractName
  /** Values of the ce_type header on this topic. */
  eventTypes: readonly string[]
}

const DAY_MS = 24 * 60 * 60 * 1000

export const TOPICS = {
  inventoryLevels: {
    name: 'inventory.levels',
    partitions: 6,
    cleanupPolicy: 'compact',
    config: { 'min.compaction.lag.ms': String(60 * 60 * 1000) },
    key: 'manufacturerId + sku + locationId',
    writtenBy: 'publishers',
    keySchema: 'inventory-level-key',
    valueSchema: 'inventory-level',
    eventTypes: ['inventory.level.changed'],
  },
  dealRegistrations: {
    name: 'deals.registrations',
    partitions: 3,
    cleanupPolicy: 'delete',
    config: { 'retention.ms': String(365 * DAY_MS) },
    key: 'manufacturerId + dealId',
    writtenBy: 'publishers',
    keySchema: 'deal-registration-key',
    valueSchema: 'deal-registration',
    audience: 'partnerId',
    eventTypes: [
      'deal.registered',
      'deal.updated',
      'deal.approved',
      'deal.rejected',
      'deal.won',
      'deal.lost',
      'deal.expired',
      'deal.resubmitted',
      'deal.reviewing',
      'deal.returned',
      'deal.cancelled',
      'deal.expiring',
    ],
  },
  leads: {
    name: 'leads.assignments',
    partitions: 3,
    cleanupPolicy: 'delete',
    config: { 'retention.ms': String(365 * DAY_MS) },
    key: 'manufacturerId + leadId',
    // Only the platform's lead registry writes it (POST /v1/leads and the partners' answers, docs/deals.md).
    writtenBy: 'platform',
    audience: 'partnerId',
    keySchema: 'lead-key',
    valueSchema: 'lead',
    eventTypes: ['lead.assigned', 'lead.accepted', 'lead.declined', 'lead.expired', 'lead.converted'],
  },
  partnerProfiles: {
    name: 'partners.profiles',
    partitions: 3,
    cleanupPolicy: 'compact',
    config: {},
    key: 'partnerId (the partner owns its profile)',
    writtenBy: 'platform',
    keySchema: 'partner-profile-key',
    valueSchema: 'partner-profile',
    eventTypes: ['partner.profile.changed'],
  },
  subscriptionHealth: {
    name: 'subscriptions.health',
    partitions: 3,
    cleanupPolicy: 'compact',
    config: {},
    key: 'manufacturerId + subscriptionId',
    // Only the sink workers write it: a freshness objective breached or met again (docs/freshness.md).
    writtenBy: 'platform',
    audience: 'partnerId',
    noGrant: true,
    keySchema: 'subscription-health-key',
    valueSchema: 'subscription-health',
    eventTypes: ['subscription.freshness.breached', 'subscription.freshness.recovered'],
  },
} as const satisfies Record<string, TopicSpec>

export const ALL_TOPICS: readonly TopicSpec[] = Object.values(TOPICS)

/** The topics publishers write (through ingestion or a source); the others only the platform writes. */
export const PUBLISHER_TOPICS: readonly TopicSpec[] = ALL_TOPICS.filter((t) => t.writtenBy === 'publishers')

/**
 * Whether a topic holds state (a record replaces its key's earlier ones, so a backlog may collapse to the latest of
 * each key): compacted, or carrying only event types of the platform's compacted topics (a copy under another name).
 */
export function isStateTopic(spec: TopicSpec): boolean {
  if (spec.cleanupPolicy === 'compact') return true
  return (
    spec.eventTypes.length > 0 &&
    spec.eventTypes.every((e) => ALL_TOPICS.some((s) => s.cleanupPolicy === 'compact' && s.eventTypes.includes(e)))
  )
}

/** The topics a set of event types (or topic names) is read from, in the order first named. */
export function topicsOf(eventTypes: readonly string[], topics: readonly TopicSpec[] = ALL_TOPICS): string[] {
  const out = new Set<string>()
  for (const t of eventTypes) {
    const spec = topics.find((s) => s.name === t || s.eventTypes.includes(t))
    if (spec) out.add(spec.name)
  }
  return [...out]
}

/** The event types a set of event types (or topic names: each of theirs) names, in the order first named. */
export function eventTypesOf(eventTypes: readonly string[], topics: readonly TopicSpec[] = ALL_TOPICS): string[] {
  const out = new Set<string>()
  for (const t of eventTypes) {
    const spec = topics.find((s) => s.name === t || s.eventTypes.includes(t))
    for (const e of spec?.name === t ? spec.eventTypes : spec ? [t] : []) out.add(e)
  }
  return [...out]
}

/**
 * The dead-letter topic of the sink runtime (its name is config worker.deadLetterTopic). Not an Avro
 * contract: the value is the original record's bytes as they were (poison included), the key the
 * subscription id, and the headers the original ones plus `dlq_*` headers: reason, error code,
 * original topic/partition/offset, attempts, subscription and event id.
 */
export const DEAD_LETTERS = {
  name: 'distributary.dead-letters',
  partitions: 3,
  cleanupPolicy: 'delete',
  config: { 'retention.ms': String(30 * DAY_MS) },
  key: 'subscription id',
} as const

export const DEAD_LETTER_HEADER = {
  reason: 'dlq_reason',
  errorCode: 'dlq_error_code',
  topic: 'dlq_topic',
  partition: 'dlq_partition',
  offset: 'dlq_offset',
  attempts: 'dlq_attempts',
  subscriptionId: 'dlq_subscription_id',
  eventId: 'dlq_event_id',
  at: 'dlq_at',
} as const

export function deadLetterTopicConfig(name: string = DEAD_LETTERS.name, replicationFactor = -1): ITopicConfig {
  return {
    topic: name,
    numPartitions: DEAD_LETTERS.partitions,
    replicationFactor,
    configEntries: [
      { name: 'cleanup.policy', value: DEAD_LETTERS.cleanupPolicy },
      ...Object.entries(DEAD_LETTERS.config).map(([n, value]) => ({ name: n, value })),
    ],
  }
}

/** Confluent TopicNameStrategy. */
export function valueSubject(topic: string): string {
  return `${topic}-value`
}
export function keySubject(topic: string): string {
  return `${topic}-key`
}

export function topicConfig(spec: TopicSpec, replicationFactor = -1): ITopicConfig {
  return {
    topic: spec.name,
    numPartitions: spec.partitions,
    replicationFactor,
    configEntries: [
      { name: 'cleanup.policy', value: spec.cleanupPolicy },
      ...Object.entries(spec.config).map(([name, value]) => ({ name, value })),
    ],
  }
}

/**
 * Creates the topics that do not exist yet (existing ones are left as they are, even when their
 * settings differ: changing a live topic is an operator's decision). Returns the names it created.
 */
export async function ensureTopics(admin: Admin, topics: readonly TopicSpec[] = ALL_TOPICS): Promise<string[]> {
  return createTopicsReady(
    admin,
    topics.map((t) => topicConfig(t)),
  )
}

/** Registers the key and value contracts of each topic (TopicNameStrategy); returns their ids. */
export async function registerTopicSchemas(
  serde: { register(subject: string, schema: string): Promise<number> },
  topics: readonly TopicSpec[] = ALL_TOPICS,
): Promise<Record<string, { keyId: number; valueId: number }>> {
  const out: Record<string, { keyId: number; valueId: number }> = {}
  for (const t of topics) {
    out[t.name] = {
      keyId: await serde.register(keySubject(t.name), contractSchema(t.keySchema)),
      valueId: await serde.register(valueSubject(t.name), contractSchema(t.valueSchema)),
    }
  }
  return out
}
