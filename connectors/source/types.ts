/**
 * The source half of the connector contract (docs/architecture.md, after Kafka Connect's
 * SourceTask): a plug-in produces records, the runtime (SourceRunner) owns batching, encoding,
 * keys, envelope headers and producing, and calls `commit(records)` only after the broker acked them,
 * which is when the plug-in stores its resume point.
 */
import type { Logger } from '../../common/logger.ts'

export interface SourceRecord<V = unknown> {
  /** Topic name; must be one of the runner's topics (schemas/topics.ts declarations). */
  topic: string
  /** The key as the topic's key contract expects it (e.g. { sku, locationId }). */
  key: unknown
  /**
   * The value as avsc encodes it (already converted and checked; see json-avro.ts). Once the runner
   * encoded a record it keeps the bytes (a retry sends the same ones) and drops `key` and `value`:
   * a plug-in reads them before returning the record from poll, never in commit or fail.
   */
  value: V
  /** ce_type, e.g. inventory.level.changed. */
  type: string
  /** ce_id; a UUIDv7 is made when absent. */
  id?: string
  /** When it happened in the source system (ce_time); now when absent. */
  occurredAt?: Date
  /**
   * W3C trace context of the event (docs/tracing.md): e.g. the ingestion request's. Absent: the
   * produce batch's (a new trace per batch when tracing is off).
   */
  traceparent?: string
  /** W3C tracestate that goes with `traceparent` (the tracestate header, when given). */
  tracestate?: string
  /**
   * The organization publishing it (ce_publisherid): ties the record to that publisher's grants. A
   * runner that publishes for one organization (SourceRunnerOptions.publisherId) stamps that one and
   * refuses a record naming another.
   */
  publisherId?: string
  /**
   * The plug-in's resume point after this record (JSON-serialisable). The runner carries it in a
   * header so that a restart after a crash between the broker's ack and the plug-in's commit can
   * find what was produced but not committed (see SourceConnector.recovery).
   */
  position?: unknown
}

export interface SourceContext {
  /** Name of this source instance (unique in the platform), e.g. "acme-wms-drop". */
  name: string
  /** ce_source of every record this source produces, e.g. /sources/csv-drop/acme-wms-drop. */
  source: string
  logger: Logger
  /**
   * The organization this source publishes for (the source's owner), when it publishes for one: the
   * runner stamps it on every record (ce_publisherid), and a record whose payload names another
   * manufacturer is refused (docs/tenancy.md). Plug-ins fill `manufacturerId` from it and reject rows
   * that name another.
   */
  publisherId?: string
  /** Aborted when the runner stops the source. */
  signal: AbortSignal
}

export interface SourceConnector<C = unknown, V = unknown> {
  readonly kind: 'source'
  start(config: C, ctx: SourceContext): Promise<void>
  /** [] when idle; may wait briefly (the runner owns pacing and batching). */
  poll(): Promise<SourceRecord<V>[]>
  /** After the broker acked these records (in poll order): store the resume point. */
  commit?(records: SourceRecord<V>[]): Promise<void>
  /**
   * The producing of these records failed for good (after the producer's own retries). Push sources
   * implement it to answer their callers (HTTP 503); pull sources leave it out, and the runner
   * retries the same records until they are acked or the source is stopped.
   */
  fail?(records: SourceRecord<V>[], err: Error): void
  /**
   * Exactly-once after a crash: when the plug-in keeps its resume point outside Kafka, a crash
   * between the broker's ack and `commit` would produce those records again. Called after `start`,
   * it returns the time of the last stored commit (ms) and the topics it writes; the runner reads
   * those topics from that time on, collects the positions this source produced since, and hands them
   * to `reconcile`, which moves the resume point past them before the first `poll`.
   */
  /**
   * A pull source's records failed to produce and are about to be produced again: false drops them
   * (the source will hand them out again, or another process now sends them, e.g. a relay that lost
   * its lease while Kafka was away). Absent: always produced again.
   */
  resend?(records: SourceRecord<V>[]): Promise<boolean>
  recovery?(): { sinceMs: number; topics: string[] } | undefined
  reconcile?(positions: unknown[]): Promise<void>
  /** Where the source stands now (its resume point, JSON-serialisable), for status reports. */
  position?(): unknown
  stop(): Promise<void>
}

export type SourceState = 'created' | 'running' | 'paused' | 'stopped' | 'failed'
