/**
 * The platform's Prometheus metrics, one registry per process, served at GET /metrics.
 * Names follow Prometheus conventions (unit suffixes, _total for counters); labels stay low in
 * cardinality except `subscription`, which is bounded by the subscriptions a worker owns.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

export class Metrics {
  readonly registry = new Registry()

  readonly httpRequests = new Counter({
    name: 'distributary_http_requests_total',
    help: 'HTTP requests answered, by method, route template and status code.',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  })

  readonly httpDuration = new Histogram({
    name: 'distributary_http_request_duration_seconds',
    help: 'Time to answer an HTTP request, by method and route template.',
    labelNames: ['method', 'route'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  })

  readonly ingestedEvents = new Counter({
    name: 'distributary_ingest_events_total',
    help: 'Events offered to a source, by event type and outcome (accepted, rejected, unavailable).',
    labelNames: ['event_type', 'outcome'] as const,
    registers: [this.registry],
  })

  readonly deliveries = new Counter({
    name: 'distributary_deliveries_total',
    help: 'Delivery attempts to partner sinks, by sink kind and outcome (delivered, retried, dead_lettered, rejected).',
    labelNames: ['sink', 'outcome'] as const,
    registers: [this.registry],
  })

  readonly deliveryLatency = new Histogram({
    name: 'distributary_delivery_latency_seconds',
    help: 'From the event entering Kafka to the partner confirming it, by sink kind.',
    labelNames: ['sink'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 300, 3600],
    registers: [this.registry],
  })

  readonly subscriptionLag = new Gauge({
    name: 'distributary_subscription_lag_records',
    help: 'Records in Kafka not yet delivered to the subscription, summed over partitions.',
    labelNames: ['subscription'] as const,
    registers: [this.registry],
  })

  readonly subscriptionFreshness = new Gauge({
    name: 'distributary_subscription_freshness_seconds',
    help:
      'Age of the oldest record not yet delivered to the subscription (0 when caught up): ' +
      'how far behind the partner runs, growing while it is down.',
    labelNames: ['subscription'] as const,
    registers: [this.registry],
  })

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'distributary_' })
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() }
  }
}
