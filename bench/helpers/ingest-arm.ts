/**
 * The platform's side of the benchmarks that time an event from its POST to its delivery (latency,
 * partner-topics): the harness's HTTP ingest served with the time of each 202, the publisher child that
 * POSTs to it, and the configuration's sink worker settings. Apart from latency.ts, which the child
 * processes import, so that they do not load the platform.
 */
import { fork } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import express from 'express'
import { createLogger } from '../../common/logger.ts'
import type { AppConfig } from '../../config/index.ts'
import type { SinkWorkerSettings } from '../../connectors/sink/worker/config.ts'
import { createHttpIngest } from '../../producers/http-ingest/index.ts'
import { testKafka } from '../../test/helpers/env.ts'
import { listenLocal } from '../../test/helpers/http.ts'
import type { SinkHarness } from '../../test/helpers/sink-runtime.ts'
import { now } from './latency.ts'

const here = path.dirname(fileURLToPath(import.meta.url))

/**
 * The configuration's worker.* settings, for a sink worker run as `distributary start --role worker` runs
 * it; the harness keeps its own consumer group and dead-letter topic, and names the worker.
 */
export function configuredWorker(config: AppConfig): Partial<SinkWorkerSettings> {
  const { id: _id, groupId: _groupId, deadLetterTopic: _deadLetterTopic, ...settings } = config.worker
  return settings
}

export interface ServedIngest {
  /** POST here: the inventory event type's ingestion endpoint. */
  url: string
  /**
   * When the ingest answered 202 (the event is accepted: the broker acked it), by sequence: the request's x-bench-seq
   * header and, for a batch, the x-bench-count - 1 sequences after it.
   */
  acceptedAt: Map<number, number>
  close(): Promise<void>
}

/**
 * The harness's HTTP ingest (its publisher's events, to its topic, at `rateLimit` per key), served on a
 * free port of 127.0.0.1, noting when each sequence was accepted; close() stops both.
 */
export async function serveIngest(
  h: SinkHarness,
  clientId: string,
  rateLimit: { perSecond: number; burst: number },
): Promise<ServedIngest> {
  const ingest = createHttpIngest({
    kafka: testKafka(clientId),
    serde: h.serde,
    logger: createLogger({ level: 'error' }),
    authenticate: async () => ({ organizationId: h.publisherId }),
    topics: [h.topic],
    rateLimit,
  })
  await ingest.start()
  const acceptedAt = new Map<number, number>()
  const app = express()
  app.use((req, res, next) => {
    const seq = Number(req.headers['x-bench-seq'])
    const count = Number(req.headers['x-bench-count'] ?? 1)
    if (Number.isInteger(seq) && Number.isInteger(count))
      res.once('finish', () => {
        if (res.statusCode !== 202) return
        const at = now()
        for (let i = 0; i < count; i++) acceptedAt.set(seq + i, at)
      })
    next()
  })
  app.use(ingest.router)
  const local = await listenLocal(app)
  return {
    url: `${local.url}/v1/events/inventory.level.changed`,
    acceptedAt,
    async close() {
      await ingest.stop()
      await local.close()
    },
  }
}

/** What the publisher child (publisher-child.ts) is asked to send. */
export interface PublisherRun {
  url: string
  rate: number
  ms: number
  manufacturerId: string
  firstSeq: number
  /**
   * 0: one event per request, sent at its intended time. More: every batchMs, the events that came due since are sent
   * in one request (as a publisher with a steady stream batches), each still timed from its own intended time.
   */
  batchMs?: number
}

/** The publisher's batches: `sent` (seq, intended time, ...), `answered` (seq, answer time, status, ...). */
export interface PublisherReport {
  sent?: number[]
  answered?: number[]
  done?: number
}

/**
 * Runs `run` in a publisher child process (publishers are other machines; so the measured process only
 * runs the platform), passing each report batch to `onReport`. Returns how many events it sent.
 */
export async function publish(run: PublisherRun, onReport: (r: PublisherReport) => void): Promise<number> {
  const publisher = fork(path.join(here, 'publisher-child.ts'), [], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  try {
    return await new Promise<number>((resolve, reject) => {
      publisher.on('message', (m) => {
        const r = m as PublisherReport
        onReport(r)
        if (r.done !== undefined) resolve(r.done)
      })
      publisher.once('exit', (code) => reject(new Error(`the publisher exited with ${code}`)))
      publisher.send(run)
    })
  } finally {
    if (publisher.connected) publisher.disconnect()
  }
}
