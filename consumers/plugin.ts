/**
 * What a sink type is to the platform (docs/architecture.md, "The connector contracts"): one record
 * per type, as producers/plugins.ts has for the sources. The control plane checks, seals and keeps
 * what the record says; the API document takes its config schema; the runtime builds the sink with
 * it. Neither holds a rule of one sink type of its own: consumers/plugins.ts lists the records.
 */
import type { Logger } from '../common/logger.ts'
import type { UrlGuard } from '../common/url-guard.ts'
import type { SinkFactory } from '../connectors/sink/types.ts'
import type { FieldError } from '../control-plane/errors.ts'
import type { Collections } from '../control-plane/store.ts'
import type { SinkConfig } from '../control-plane/types.ts'
import type { TopicSpec } from '../schemas/topics.ts'
import type { PartnerTopicWriter } from './kafka-topic/sink.ts'
import type { MongoClientPool } from './mongodb/client-pool.ts'
import type { MappingSandbox } from './rest/mapping-sandbox.ts'
import type { OAuth2TokenCache } from './rest/oauth2.ts'
import type { SinkSecrets } from './secrets.ts'
import type { WebhookClient } from './webhook/client.ts'

export type { SinkSecrets }

export type SinkType = SinkConfig['type']

/** What the control plane tells a sink type's checks about the subscription being saved. */
export interface SinkCheck {
  /** The subscription's event types (after the change). */
  eventTypes: readonly string[]
  /** The sink as the request sent it, secrets in the clear; undefined: the request keeps the stored sink. */
  sent: SinkConfig | undefined
  /** On a change: the subscription as stored. */
  previous?: { sink: SinkConfig; eventTypes: readonly string[] }
  /** The topics of the platform (schemas/topics.ts ALL_TOPICS). */
  topics: readonly TopicSpec[]
  guard: UrlGuard
  logger: Logger
  /** Kafka access for partners (ControlPlaneOptions.partnerKafka); absent: none is configured. */
  partnerKafka: { topicPrefix: string } | undefined
}

/** The control plane's store and settings, for a sink type that keeps resources beside its subscriptions. */
export interface SinkControl {
  cols: Collections
  partnerKafka: { topicPrefix: string } | undefined
}

/** The shared clients the sinks of a worker are built on (consumers/runtime.ts opens them). */
export interface SinkRuntime {
  secrets: SinkSecrets
  /** The topics the worker serves. */
  topics: readonly TopicSpec[]
  /** The webhook and REST sinks' HTTP client: one keep-alive pool per origin, the URL guard, the status rules. */
  http: WebhookClient
  tokens: OAuth2TokenCache
  /** Where REST sinks' JSONata mappings run, off the worker's event loop. */
  mappings: MappingSandbox
  mongo: MongoClientPool
  partnerTopics: PartnerTopicWriter
  /** An HTTP sink's timeout when its subscription sets none (WEBHOOK_TIMEOUT_MS). */
  webhookTimeoutMs: number
}

export interface SinkPlugin<S extends SinkConfig = SinkConfig> {
  readonly type: S['type']
  /** The name of its config schema in the API document (components/schemas), one branch of `Sink`. */
  readonly schemaName: string
  /** Its config schema (JSON Schema, as the management API validates and documents it). */
  readonly schema: Readonly<Record<string, unknown>>
  /** Config paths that are secrets: sealed at rest, write-only in the API, opened for the sink only. */
  readonly secretPaths: readonly string[]
  /** Config paths holding URLs: the SSRF guard checks them when the sink is saved (and guards every connection). */
  readonly urlPaths: readonly string[]
  /** Its subscriptions sign what they send with webhook secrets the control plane makes and rotates. */
  readonly signingSecrets?: boolean
  /**
   * Fixed once created: a subscription cannot change to or from this type, and a new config keeps
   * the stored one (what it could change is refused by `validate`).
   */
  readonly fixed?: boolean
  /**
   * The partner reads it with its own Kafka access: creating, changing or deleting such a subscription reconciles that
   * access.
   */
  readonly partnerAccess?: boolean
  /**
   * The type's own rules, as 422 faults naming the field (`sink.<path>`, `eventTypes`). `sink` is
   * what will be stored: the sent config with its secrets sealed (a secret left out keeps the stored
   * one), or the stored config when the request keeps it (or the type is fixed).
   */
  validate(sink: S, check: SinkCheck): FieldError[] | Promise<FieldError[]>
  /**
   * Reserves what a new subscription of this type keeps beside it, before the subscription is stored;
   * resolves to the sink as stored. Refusals are 409 or 422 naming the field.
   */
  reserve?(
    sink: S,
    sub: { id: string; partnerId: string; eventTypes: readonly string[] },
    control: SinkControl,
  ): Promise<S>
  /**
   * Frees what `reserve` took (the subscription was not stored, or was deleted); resolves to the partner topics
   * removed.
   */
  release?(subscriptionId: string, control: SinkControl): Promise<string[]>
  /** The runtime's factory of this type's sinks. */
  create(runtime: SinkRuntime): SinkFactory
}

/**
 * The head of a sink type's record, its type named once: the type, the name of its config schema in the API
 * document, and that schema as the document holds it: an object closed to other fields, its `type` the sink type's
 * name and required, then the type's own `required` fields and `properties`.
 */
export function sinkConfig<T extends SinkType>(
  type: T,
  schemaName: string,
  o: { required: readonly string[]; description?: string; properties: Record<string, unknown> },
): { type: T; schemaName: string; schema: Readonly<Record<string, unknown>> } {
  return {
    type,
    schemaName,
    schema: {
      type: 'object',
      additionalProperties: false,
      required: ['type', ...o.required],
      ...(o.description !== undefined ? { description: o.description } : {}),
      properties: { type: { const: type }, ...o.properties },
    },
  }
}
