/**
 * The HTTP ingestion source: a push-style SourceConnector. Requests offer their validated events to
 * the bounded buffer and wait; the runner drains whole requests into produce batches, acks them after
 * the broker did (the request answers 202) or fails them (the request answers 503).
 */
import { RetriableError } from '../../common/errors.ts'
import { PushBuffer } from '../../connectors/source/push-buffer.ts'
import type { SourceConnector, SourceContext, SourceRecord } from '../../connectors/source/types.ts'

export interface HttpIngestSourceConfig {
  /** Records waiting for Kafka at most; beyond it requests are refused with 503. */
  bufferCapacity: number
  /** Records per produce request (whole requests only). */
  maxBatch: number
  /** How long one poll waits for a request, in ms. */
  pollWaitMs: number
}

export class HttpIngestSource implements SourceConnector<HttpIngestSourceConfig> {
  readonly kind = 'source' as const
  private buffer = new PushBuffer(10_000)
  private config: HttpIngestSourceConfig = { bufferCapacity: 10_000, maxBatch: 5_000, pollWaitMs: 100 }
  private signal: AbortSignal | undefined
  private running = false

  async start(config: HttpIngestSourceConfig, ctx: SourceContext): Promise<void> {
    this.config = config
    this.buffer = new PushBuffer(config.bufferCapacity)
    this.signal = ctx.signal
    this.running = true
  }

  /** Resolves when the broker acked every record; rejects (RetriableError) when they are not stored. */
  offer(records: SourceRecord[]): Promise<void> {
    if (!this.running) return Promise.reject(new RetriableError('ingestion is not running', 5000, { stage: 'buffer' }))
    return this.buffer.offer(records)
  }

  poll(): Promise<SourceRecord[]> {
    return this.buffer.drain(this.config.maxBatch, this.config.pollWaitMs, this.signal)
  }

  async commit(records: SourceRecord[]): Promise<void> {
    this.buffer.ack(records)
  }

  fail(records: SourceRecord[], err: Error): void {
    this.buffer.fail(records, err)
  }

  async stop(): Promise<void> {
    this.running = false
    this.buffer.close(new RetriableError('ingestion stopped', 5000, { stage: 'buffer' }))
  }
}
