/**
 * The documents of the control plane. The sink runtime (connectors/) reads subscriptions, grants
 * and connector desired state from here and writes connector status and the delivery log.
 */
export type Scope = 'admin' | 'publisher' | 'partner'
export type OrganizationKind = 'publisher' | 'partner'

/** Who is calling: resolved from an API key. Admin keys have no organization. */
export interface Principal {
  keyId: string
  scope: Scope
  organizationId: string | null
}

export interface OrganizationDoc {
  _id: string
  kind: OrganizationKind
  name: string
  slug: string
  profile: Record<string, unknown>
  createdAt: Date
  updatedAt: Date
  version: number
  /**
   * Events reporting changes of this organization (a partner's profile) that the outbox relay has
   * not confirmed yet, oldest first. Written in the same single-document write as the change they
   * report (the store has no multi-document transactions); only the API writes this document, the
   * relay records what it sent in `outbox_relay` (FerretDB v1 does not isolate concurrent updates
   * of one document, so each document keeps one writer).
   */
  outbox?: OutboxEntry[]
  /** When the newest outbox entry was written (the relay scans by it). */
  outboxAt?: Date
}

/** One event waiting in an organization's outbox: everything the relay needs to produce it. */
export interface OutboxEntry {
  /** ce_id (UUIDv7): the same on every attempt, so duplicates are recognisable. */
  eventId: string
  topic: string
  /** ce_type, e.g. partner.profile.changed. */
  type: string
  /** The key as the topic's key contract expects it, e.g. { partnerId }. */
  key: Record<string, unknown>
  /** The value as avsc encodes it (converted and checked against the contract when written). */
  value: Record<string, unknown>
  /** Strictly increasing per organization (its document version after the change). */
  sequence: number
  occurredAt: Date
  /** The publisher to stamp (ce_publisherid) when it is not the document's own id (a deal's manufacturer). */
  publisherId?: string
}

/** The relay's record of what it produced for one organization (`_id` = organization id). */
export interface OutboxRelayDoc {
  _id: string
  /** Highest outbox sequence the broker acknowledged. */
  sentSequence: number
  lastEventId: string
  sentAt: Date
}

export interface ApiKeyDoc {
  _id: string
  /** Non-secret, unique, shown in lists: the part of the key before the dot. */
  prefix: string
  /** scrypt(secret, salt), base64. */
  hash: string
  salt: string
  scope: Scope
  organizationId: string | null
  name: string
  createdAt: Date
  createdBy: string
  /** Set when rotated (end of the overlap) or created with an expiry. */
  expiresAt: Date | null
  revokedAt: Date | null
  lastUsedAt: Date | null
  rotatedFrom: string | null
}

/**
 * Row filter: every listed field must hold one of the listed values (a conjunction of `in` sets).
 * The value "$partnerId" stands for the receiving partner's organization id (e.g. own deals only).
 */
export type RowFilter = Record<string, { in: Array<string | number | boolean> }>

export type GrantStatus = 'offered' | 'active'

export interface Entitlement {
  eventType: string
  /** Absent: every row of the event type. */
  filter?: RowFilter
  /** Field paths (dot-separated) the partner may see. Absent: every field. */
  fields?: string[]
}

/**
 * A publisher's contract with one partner (one grant per pair, an entitlement per event type). A
 * relationship has two sides: the publisher offers, the partner accepts (or declines, or later
 * revokes, by deleting it). Only accepted event types are delivered (docs/tenancy.md).
 */
export interface GrantDoc {
  _id: string
  publisherId: string
  partnerId: string
  entitlements: Entitlement[]
  /** Derived from entitlements, for queries. */
  eventTypes: string[]
  /**
   * offered: waiting for the partner, covers nothing; active: accepted. Absent: a grant written
   * before consent existed, in force as it was (its partner may revoke it).
   */
  status?: GrantStatus
  /**
   * The event types the partner accepted. A publisher's change that adds event types leaves those
   * offered until the partner accepts again; one that removes some takes effect at once.
   */
  acceptedEventTypes?: string[]
  acceptedAt?: Date | null
  createdAt: Date
  updatedAt: Date
  version: number
}

export interface WebhookSink {
  type: 'webhook'
  url: string
}

export interface RestSinkAuth {
  type: 'none' | 'bearer' | 'basic' | 'oauth2' | 'header'
  /** Secret fields (token, password, clientSecret, headerValue) are sealed at rest. */
  [field: string]: unknown
}

export interface RestSink {
  type: 'rest'
  /**
   * URL template: `{key}`, `{eventId}`, `{eventType}`, `{topic}`, `{value.<path>}` after the host, each URL-encoded.
   */
  url: string
  method: 'POST' | 'PUT' | 'PATCH'
  auth?: RestSinkAuth
  /** JSONata over {key, value, eventId, eventType, timestamp, topic, partition, offset}; absent: the value. */
  bodyMapping?: string
  headers?: Record<string, string>
  /** With deliveryPolicy.batchSize > 1: how long a batch waits for more events, in ms. */
  batchWaitMs?: number
}

export interface MongoSink {
  type: 'mongodb'
  /** Sealed at rest. */
  connectionString: string
  database: string
  collection: string
}

/**
 * A topic of the partner's own on the platform's Kafka cluster (docs/partner-topics.md): the
 * subscription's records as it would receive them anywhere else, re-encoded in Avro under the partner
 * topic's subject, read by the partner's Kafka client with its SCRAM credentials.
 */
export interface KafkaTopicSink {
  type: 'kafka-topic'
  /**
   * What follows `<prefix><partner slug>.` in the topic's name (absent: the source topic's name). Fixed once created.
   */
  name?: string
  /** The partner topic, resolved when the subscription is created (read-only). */
  topic?: string
}

export type SinkConfig = WebhookSink | RestSink | MongoSink | KafkaTopicSink

/** A partner topic (its name is the _id, so two subscriptions can never write one). */
export interface PartnerTopicDoc {
  _id: string
  partnerId: string
  subscriptionId: string
  /** The platform topic it is projected from. */
  sourceTopic: string
  createdAt: Date
}

/** A partner's Kafka user (SCRAM); the password is never stored, only a check for the registry's basic auth. */
export interface PartnerKafkaUserDoc {
  /** The partner's organization id. */
  _id: string
  username: string
  mechanism: 'SCRAM-SHA-512'
  /** scrypt of the password (base64), with its salt: the registry accepts the same credentials. */
  check: { salt: string; hash: string }
  createdAt: Date
  rotatedAt: Date
  version: number
}

export interface DeliveryPolicy {
  /** Seconds to wait before each retry (Standard Webhooks style schedule). */
  retrySchedule: number[]
  timeoutMs: number
  /** 0: unlimited. */
  rateLimitPerSecond: number
  batchSize: number
  /** Disable the endpoint after failing continuously this long. */
  disableAfterFailingSeconds: number
  /**
   * Keys delivered at the same time (each key stays in order). Absent: the platform default
   * (delivery.concurrency), so a change of that default reaches subscriptions that never set one.
   */
  concurrency?: number
  /**
   * The freshness objective: a breach when the oldest record not yet delivered is older than this many
   * seconds, a recovery when it is no longer (absent: no objective). See docs/freshness.md.
   */
  freshnessSloSeconds?: number
  /**
   * State topics only: a subscription resumed with records waiting gets only the latest record of each
   * key among them (tombstones included), then goes on live. Absent or false: every record.
   */
  collapseBacklog?: boolean
}

export interface WebhookSecretDoc {
  id: string
  /** `whsec_...` sealed with the key ring. */
  sealed: string
  createdAt: Date
  /** Null: current. Set on rotation: valid (signed with too) until then. */
  expiresAt: Date | null
}

export type StartFrom = 'latest' | 'earliest' | 'snapshot'

/** A writer schema registered although this subscription's pinned reader cannot read it (policy flag). */
export interface SchemaIssue {
  subject: string
  /** The new version. */
  version: number
  eventType: string
  pinnedVersion: number
  /** The fields at fault, each with the reason. */
  fields: string[]
  at: Date
}

export interface SubscriptionDoc {
  _id: string
  partnerId: string
  name: string
  eventTypes: string[]
  filter?: RowFilter
  fields?: string[]
  /** Pinned reader schema version per event type. */
  schemaVersions: Record<string, number>
  /** Set by the registry's pinned-reader check in `flag` mode (control-plane/pinned-readers.ts). */
  schemaIssues?: SchemaIssue[]
  sink: SinkConfig
  /**
   * What the subscription itself set; every other field is the platform's default at delivery time
   * (DELIVERY_RETRY_SCHEDULE, WEBHOOK_TIMEOUT_MS, ...), so a changed default reaches it.
   */
  deliveryPolicy: Partial<DeliveryPolicy>
  /**
   * Set once deliveryPolicy holds only the subscription's own values (documents before held a frozen copy of the
   * defaults).
   */
  deliveryPolicyOwn?: true
  startFrom: StartFrom
  webhookSecrets: WebhookSecretDoc[]
  createdAt: Date
  updatedAt: Date
  version: number
}

export type DesiredState = 'running' | 'paused' | 'stopped'

export interface OffsetReset {
  id: string
  /** snapshot: the latest record of every key, then everything after (connectors/sink/snapshot.ts). */
  to: 'earliest' | 'latest' | 'timestamp' | 'snapshot'
  timestamp: Date | null
  requestedAt: Date
  requestedBy: string
}

/** A subscription's snapshot bootstrap (startFrom 'snapshot' or an offset reset to 'snapshot'). */
export interface SnapshotProgress {
  id: string
  /** scanning: finding each key's latest record (done/total: records); delivering: done/total keys; live: complete. */
  phase: 'scanning' | 'delivering' | 'live'
  done: number
  total: number
  startedAt: Date
  completedAt: Date | null
}

/** What the runtime reports (written by the worker that runs the connector). */
export interface ConnectorStatus {
  state: 'running' | 'paused' | 'stopped' | 'failed' | 'unassigned' | 'snapshotting'
  workerId: string | null
  positions: Array<{ topic: string; partition: number; offset: string }>
  lag: number | null
  lastError: { code: string; message: string; at: Date } | null
  /** The desired-state generation the worker has applied. */
  appliedGeneration: number
  /** The offset reset the worker has applied. */
  appliedResetId: string | null
  /** The current or last snapshot of the subscription (absent: none). */
  snapshot?: SnapshotProgress | null
  /** Age in seconds of the oldest record not yet delivered (0: caught up; absent or null: unknown). */
  freshnessSeconds?: number | null
  /** Since when freshnessSeconds is above the subscription's freshnessSloSeconds (null: within it, or none). */
  freshnessBreachedSince?: Date | null
  reportedAt: Date
}

/** The runtime's report on one connector, in a document of its own (`_id` = subscription id). */
export interface ConnectorStatusDoc extends ConnectorStatus {
  _id: string
}

/** A subscription's sink connector: desired state set through the API, status from the runtime. */
/**
 * A change signal (`_id`: the kind of change, e.g. 'connectors'): a new token after every write of that
 * kind, so that a poller reads this one document by `_id` to know whether to look at the others again.
 */
export interface ChangeSignalDoc {
  _id: string
  token: string
  at: Date
}

export interface ConnectorDoc {
  _id: string
  subscriptionId: string
  partnerId: string
  desiredState: DesiredState
  /** Incremented on every change a worker must apply (state, restart, reset). */
  generation: number
  restartRequestedAt: Date | null
  offsetReset: OffsetReset | null
  status: ConnectorStatus | null
  createdAt: Date
  updatedAt: Date
}

export type DeliveryStatus = 'pending' | 'retrying' | 'delivered' | 'dead'

export interface DeliveryAttempt {
  at: Date
  durationMs: number
  statusCode: number | null
  error: string | null
  /** At most 1 KiB of the receiver's answer. */
  responseExcerpt: string | null
}

/** One event's delivery to one subscription (written by the sink runtime). */
export interface DeliveryDoc {
  /** `deliveryId(subscriptionId, eventId)` (a document written before it was derived: `dlv_` + ObjectId hex). */
  _id: string
  subscriptionId: string
  partnerId: string
  /**
   * The organization that published the event (its ce_publisherid stamp): a publisher sees the
   * deliveries of its own events only. Null: unknown (an undecodable record, or written before it was kept).
   */
  publisherId?: string | null
  eventId: string
  eventType: string
  key: string
  status: DeliveryStatus
  attempts: DeliveryAttempt[]
  attemptCount: number
  source: { topic: string; partition: number; offset: string } | null
  createdAt: Date
  updatedAt: Date
  deliveredAt: Date | null
  deadAt: Date | null
  deadReason: string | null
  retryRequestedAt: Date | null
  /** The dead letter itself (what a retry request re-delivers): set when the delivery went dead. */
  deadLetter?: DeadLetterRecord | null
  /**
   * A test event (POST /v1/subscriptions/{id}/test): an example record sent on request, not a position of the
   * subscription. A failed one is dead without a dead letter (send another test instead of retrying it).
   */
  test?: boolean
}

/** A dead-lettered record as the runtime stored it (also produced to the dead-letter topic). */
export interface DeadLetterRecord {
  /** Where it came from. */
  topic: string
  partition: number
  offset: string
  /** base64 of the original Kafka key and value bytes (value null: a tombstone). */
  key: string | null
  value: string | null
  headers: Record<string, string>
  /** Where the dead-letter topic holds it (null when it could not be produced there). */
  deadLetterTopic: { topic: string; partition: number; offset: string } | null
}

/** A deleted subscription whose delivery log is still to be removed (control-plane/log-removals.ts). */
export interface LogRemovalDoc {
  /** The deleted subscription's id. */
  _id: string
  requestedAt: Date
}

export interface RetryRequestDoc {
  _id: string
  subscriptionId: string
  partnerId: string
  /** event: one dead letter again; dead-letters: every one; test: an example of `eventType` (its id `eventId`). */
  kind: 'event' | 'dead-letters' | 'test'
  eventId: string | null
  /** The event type of a test event (null for the other kinds). */
  eventType?: string | null
  status: 'pending' | 'done'
  requestedAt: Date
  requestedBy: string
  completedAt: Date | null
  /** What came of it, once done (e.g. re-delivered and superseded counts, or why nothing was). */
  outcome?: string | null
  /** A retry of every dead letter under way: how far it went (written by the worker after each page). */
  progress?: RetryProgress | null
}

/**
 * How far a retry of every dead letter went (connectors/sink/worker/retry-requests.ts): its dead letters are taken a
 * page at a time, oldest first; a worker that takes the request up again goes on from `cursor`.
 */
export interface RetryProgress {
  /** Where the next page starts (the delivery log's page cursor; null: the first). */
  cursor: string | null
  /** The last dead letter of the page begun after `cursor` (null: none begun): that page may be cut off. */
  through: { createdAt: Date; _id: string } | null
  /** Of the pages done: dead letters taken, re-delivered, superseded, failed again. */
  taken: number
  redelivered: number
  superseded: number
  failed: number
}

/** Idempotency-Key records of the management API's creates (`<api key id>:<Idempotency-Key>`; body sealed). */
export type { IdempotencyDoc } from '../common/idempotency.ts'

/** A source connector's plug-in (HTTP ingestion is built in and not a resource). */
export type SourceKindName = 'csv-drop' | 'mongodb'

/** A source connector: declared through the API or in configuration (`sources.file`). */
export interface SourceDoc {
  /** `src_` + ObjectId hex. */
  _id: string
  /** Unique across the platform; the ce_source of its events is /sources/<kind>/<name>. */
  name: string
  kind: SourceKindName
  /** The publisher organization whose events it produces. */
  publisherId: string
  origin: 'api' | 'config'
  /** Validated against the plug-in's config schema; secret settings sealed with the key ring. */
  config: Record<string, unknown>
  desiredState: DesiredState
  /** Incremented on every change a worker must apply (state or config). */
  generation: number
  /** Incremented when the config changes (a running instance restarts with the new config). */
  configVersion: number
  createdAt: Date
  updatedAt: Date
}

/** What the source runtime reports (one writer: the worker holding the source's lease). */
export interface SourceStatus {
  state: 'running' | 'paused' | 'stopped' | 'failed' | 'starting' | 'unassigned'
  workerId: string | null
  /** The plug-in's resume point / progress (e.g. file and line, or the polling watermark). */
  position: unknown
  counts: { produced: number; batches: number; failedBatches: number }
  lastError: { code: string; message: string; at: Date } | null
  appliedGeneration: number
  reportedAt: Date
}

export interface SourceStatusDoc extends SourceStatus {
  _id: string
}
