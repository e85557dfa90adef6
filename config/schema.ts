/**
 * The one configuration schema of Distributary. Every setting has a doc string, an environment
 * variable and a default; `loadConfig` validates it strictly at boot. Secrets are `sensitive`, so
 * convict masks them in `toString()` and in validation messages.
 */
export const SASL_MECHANISMS = ['none', 'plain', 'scram-sha-256', 'scram-sha-512'] as const
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const

const port = (doc: string, def: number, env: string) => ({ doc, format: 'port', default: def, env })

export const configSchema = {
  log: {
    level: { doc: 'Minimum level of the JSON log lines written to stdout.', format: [...LOG_LEVELS], default: 'info', env: 'LOG_LEVEL' },
  },
  http: {
    host: { doc: 'Address the API and ingestion server listens on.', format: String, default: '127.0.0.1', env: 'HTTP_HOST' },
    port: port('Port of the API and ingestion server.', 8080, 'HTTP_PORT'),
  },
  kafka: {
    brokers: {
      doc: 'Comma-separated host:port list of an external Kafka cluster. Empty: use the local stack (provisioned by `distributary stack up`).',
      format: 'broker-list',
      default: '',
      env: 'KAFKA_BROKERS',
    },
    clientId: { doc: 'Kafka client id prefix of every producer, consumer and admin client.', format: String, default: 'distributary', env: 'KAFKA_CLIENT_ID' },
    ssl: {
      enabled: { doc: 'Connect to Kafka over TLS.', format: Boolean, default: false, env: 'KAFKA_SSL' },
      caFile: { doc: 'PEM file of the CA that signed the brokers\' certificates (empty: the system CAs).', format: String, default: '', env: 'KAFKA_SSL_CA_FILE' },
      rejectUnauthorized: { doc: 'Verify the brokers\' certificates. Only for tests against self-signed brokers.', format: Boolean, default: true, env: 'KAFKA_SSL_REJECT_UNAUTHORIZED' },
    },
    sasl: {
      mechanism: { doc: 'SASL mechanism for Kafka authentication.', format: [...SASL_MECHANISMS], default: 'none', env: 'KAFKA_SASL_MECHANISM' },
      username: { doc: 'SASL user name.', format: String, default: '', env: 'KAFKA_SASL_USERNAME' },
      password: { doc: 'SASL password.', format: String, default: '', env: 'KAFKA_SASL_PASSWORD', sensitive: true },
    },
    connectionTimeoutMs: { doc: 'Timeout of one connection attempt to a broker, in milliseconds.', format: 'nat', default: 3000, env: 'KAFKA_CONNECTION_TIMEOUT_MS' },
    requestTimeoutMs: { doc: 'Timeout of one Kafka request, in milliseconds.', format: 'nat', default: 30000, env: 'KAFKA_REQUEST_TIMEOUT_MS' },
  },
  mongodb: {
    uri: {
      doc: 'MongoDB connection string (credentials and tls=true go in it). Empty: use the local stack.',
      format: 'mongodb-uri',
      default: '',
      env: 'MONGODB_URI',
      sensitive: true,
    },
    database: { doc: 'Database holding the control plane (partners, keys, grants, subscriptions, delivery log).', format: String, default: 'distributary', env: 'MONGODB_DATABASE' },
    serverSelectionTimeoutMs: { doc: 'How long the driver waits for a reachable server, in milliseconds.', format: 'nat', default: 5000, env: 'MONGODB_SERVER_SELECTION_TIMEOUT_MS' },
  },
  schemaRegistry: {
    url: {
      doc: 'URL of an external Confluent-compatible Schema Registry. Empty: the built-in registry is started.',
      format: 'url-or-empty',
      default: '',
      env: 'SCHEMA_REGISTRY_URL',
    },
    username: { doc: 'Basic-auth user of the external registry.', format: String, default: '', env: 'SCHEMA_REGISTRY_USERNAME' },
    password: { doc: 'Basic-auth password of the external registry.', format: String, default: '', env: 'SCHEMA_REGISTRY_PASSWORD', sensitive: true },
    host: { doc: 'Address the built-in registry listens on.', format: String, default: '127.0.0.1', env: 'SCHEMA_REGISTRY_HOST' },
    port: port('Port of the built-in registry.', 8081, 'SCHEMA_REGISTRY_PORT'),
    topic: { doc: 'Compacted single-partition topic holding the built-in registry\'s schemas (Confluent\'s kafkastore.topic); created when missing.', format: String, default: '_schemas', env: 'SCHEMA_REGISTRY_TOPIC' },
  },
  ingest: {
    maxEvents: { doc: 'Events per POST /v1/events/{eventType} request at most (more: 413).', format: 'nat', default: 1000, env: 'INGEST_MAX_EVENTS' },
    bodyLimitBytes: { doc: 'Body limit of an ingestion request, in bytes (more: 413).', format: 'nat', default: 5 * 1024 * 1024, env: 'INGEST_BODY_LIMIT_BYTES' },
    idempotencyWindowMs: { doc: 'How long an Idempotency-Key replays its first answer, in milliseconds.', format: 'nat', default: 24 * 60 * 60 * 1000, env: 'INGEST_IDEMPOTENCY_WINDOW_MS' },
    bufferCapacity: { doc: 'Events waiting for Kafka at most; beyond it ingestion answers 503 (back-pressure).', format: 'nat', default: 20000, env: 'INGEST_BUFFER_CAPACITY' },
    retryAfterSeconds: { doc: 'Retry-After of a 503 when the events could not be stored.', format: 'nat', default: 5, env: 'INGEST_RETRY_AFTER_SECONDS' },
  },
  bench: {
    csvRows: { doc: 'Rows of the stock file of `npm run bench -- csv` (the issue\'s full run: 1000000).', format: 'nat', default: 100000, env: 'BENCH_CSV_ROWS' },
  },
  stack: {
    dir: { doc: 'Folder of this checkout\'s local stack: data, logs, pid files (git-ignored). Empty: .stack/ in the project.', format: String, default: '', env: 'STACK_DIR' },
    cacheDir: {
      doc: 'User-level cache of what the stack downloads or builds (Kafka jars, the FerretDB binary), shared by every checkout. Empty: $XDG_CACHE_HOME/distributary or ~/.cache/distributary.',
      format: String,
      default: '',
      env: 'STACK_CACHE_DIR',
    },
    kafka: {
      version: { doc: 'Apache Kafka version resolved from Maven Central (org.apache.kafka:kafka_2.13).', format: String, default: '4.1.1', env: 'STACK_KAFKA_VERSION' },
      port: port('Port of the local Kafka broker.', 9092, 'STACK_KAFKA_PORT'),
      controllerPort: port('Port of the local KRaft controller.', 9093, 'STACK_KAFKA_CONTROLLER_PORT'),
      heap: { doc: 'JVM heap of the local broker (-Xmx), sized for a 2-core machine.', format: String, default: '512m', env: 'STACK_KAFKA_HEAP' },
    },
    mongodb: {
      port: port('Port of the local MongoDB-compatible server (FerretDB).', 27017, 'STACK_MONGODB_PORT'),
    },
    readyTimeoutMs: { doc: 'How long `stack up` waits for each server to answer, in milliseconds.', format: 'nat', default: 120000, env: 'STACK_READY_TIMEOUT_MS' },
  },
}
