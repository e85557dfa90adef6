/**
 * `distributary start`: the HTTP server with /health and a /ready that tells the truth about
 * Kafka and MongoDB, JSON logs, and a clean exit on SIGTERM.
 */
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import net from 'node:net'
import { expect } from 'chai'
import { startPlatform, type Platform } from '../../cli/platform.ts'
import { createLogger } from '../../common/logger.ts'
import { kafkaBrokers, loadConfig, mongoUri } from '../../config/index.ts'
import { PROJECT_ROOT } from '../../stack/index.ts'
import { waitFor } from '../helpers/env.ts'
import { cliArgs } from '../helpers/cli.ts'
import { parseRawAnswer, rawHttp } from '../helpers/http.ts'

const quiet = createLogger({ level: 'error', write: () => undefined })

async function closedPort(): Promise<number> {
  const srv = net.createServer().listen(0, '127.0.0.1')
  await new Promise((r) => srv.once('listening', r))
  const port = (srv.address() as net.AddressInfo).port
  await new Promise((r) => srv.close(r))
  return port
}

describe('platform start', function () {
  this.timeout(60_000)
  const base = loadConfig()
  const externalEnv = {
    KAFKA_BROKERS: kafkaBrokers(base).join(','),
    MONGODB_URI: mongoUri(base),
    SCHEMA_REGISTRY_PORT: '0',
    // With an external MongoDB the platform insists on an explicit key for secrets at rest.
    SECRETS_ENCRYPTION_KEYS: `k1:${randomBytes(32).toString('base64')}`,
  }
  let platform: Platform | undefined

  afterEach(async () => {
    await platform?.close()
    platform = undefined
  })

  it('answers /health, and /ready 200 when Kafka, MongoDB and the registry all answer', async () => {
    platform = await startPlatform(loadConfig({ env: { ...externalEnv, HTTP_PORT: '0' } }), quiet)
    const { schemaRegistryUrl, serde } = await platform.contracts
    // The built-in registry answers nobody without credentials; the platform uses its internal ones.
    expect((await fetch(`${schemaRegistryUrl}/subjects`)).status).to.equal(401)
    const subjects = await serde.client.request<string[]>('GET', '/subjects')
    expect(subjects).to.include.members(['inventory.levels-value', 'inventory.levels-key'])
    const health = await fetch(`${platform.url}/health`)
    expect(health.status).to.equal(200)
    expect(await health.json()).to.include({ status: 'ok' })
    const ready = await fetch(`${platform.url}/ready`)
    const body = (await ready.json()) as { status: string; checks: Record<string, { status: string }> }
    expect(ready.status, JSON.stringify(body)).to.equal(200)
    expect(body.checks.kafka?.status).to.equal('up')
    expect(body.checks.mongodb?.status).to.equal('up')
    expect(body.checks.schemaRegistry?.status).to.equal('up')
  })

  it('/ready is 503 and names Kafka when no broker answers, while MongoDB is up', async () => {
    const port = await closedPort()
    platform = await startPlatform(
      loadConfig({ env: { ...externalEnv, KAFKA_BROKERS: `127.0.0.1:${port}`, HTTP_PORT: '0' } }),
      quiet,
    )
    const ready = await fetch(`${platform.url}/ready`)
    const body = (await ready.json()) as { status: string; checks: Record<string, { status: string; error?: string }> }
    expect(ready.status).to.equal(503)
    expect(body.status).to.equal('not ready')
    expect(body.checks.kafka?.status).to.equal('down')
    expect(body.checks.mongodb?.status).to.equal('up')
    expect(body.checks.schemaRegistry?.status).to.equal('down')
  })

  it('/ready is 503 and names MongoDB when the store does not answer', async () => {
    const port = await closedPort()
    platform = await startPlatform(
      loadConfig({
        env: {
          ...externalEnv,
          MONGODB_URI: `mongodb://127.0.0.1:${port}/`,
          MONGODB_SERVER_SELECTION_TIMEOUT_MS: '500',
          HTTP_PORT: '0',
        },
      }),
      quiet,
    )
    const ready = await fetch(`${platform.url}/ready`)
    const body = (await ready.json()) as { checks: Record<string, { status: string }> }
    expect(ready.status).to.equal(503)
    expect(body.checks.mongodb?.status).to.equal('down')
    expect(body.checks.kafka?.status).to.equal('up')
  })

  it('/metrics serves Prometheus text with request counts by route template, without an API key', async () => {
    platform = await startPlatform(loadConfig({ env: { ...externalEnv, HTTP_PORT: '0' } }), quiet)
    await fetch(`${platform.url}/health`)
    await fetch(`${platform.url}/v1/subscriptions/sub_0123456789abcdef01234567`) // 401: no key
    const res = await fetch(`${platform.url}/metrics`)
    expect(res.status).to.equal(200)
    expect(res.headers.get('content-type')).to.match(/^text\/plain; version=0\.0\.4/)
    const text = await res.text()
    expect(text).to.match(/^distributary_http_requests_total\{method="GET",route="\/health",status="200"\} 1$/m)
    expect(text).to.match(/^# TYPE distributary_http_request_duration_seconds histogram$/m)
    expect(text).to.match(/^distributary_process_resident_memory_bytes \d+/m)
    expect(text, 'an id became a label').to.not.contain('sub_0123456789abcdef01234567')
  })

  it('unknown routes get a problem+json 404', async () => {
    platform = await startPlatform(loadConfig({ env: { ...externalEnv, HTTP_PORT: '0' } }), quiet)
    const res = await fetch(`${platform.url}/nope`)
    expect(res.status).to.equal(404)
    expect(res.headers.get('content-type')).to.match(/^application\/problem\+json/)
    expect(await res.json()).to.include({ status: 404, title: 'Not Found' })
  })

  it(
    'a request the HTTP parser refuses is answered whole, as the API answers errors (problem+json naming the ' +
      'header) and as the registry does (error_code, message)',
    async () => {
      platform = await startPlatform(loadConfig({ env: { ...externalEnv, HTTP_PORT: '0' } }), quiet)
      const { schemaRegistryUrl } = await platform.contracts
      // a control character in a header value: Node answered a bare 400 (no body) and reset the connection
      const bad =
        'Host: x\r\nIdempotency-Key: key\x1b0001\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}'
      const api = parseRawAnswer(await rawHttp(platform.url, `POST /v1/organizations HTTP/1.1\r\n${bad}`))
      expect(api.status).to.equal(400)
      expect(api.headers['content-type']).to.equal('application/problem+json; charset=utf-8')
      expect(api.body.errors).to.deep.equal([
        { field: 'Idempotency-Key', in: 'header', message: 'holds a character HTTP does not allow in a header value' },
      ])
      const registry = parseRawAnswer(await rawHttp(schemaRegistryUrl, `POST /subjects/x/versions HTTP/1.1\r\n${bad}`))
      expect(registry.status).to.equal(400)
      expect(registry.headers['content-type']).to.equal('application/vnd.schemaregistry.v1+json')
      expect(registry.body).to.deep.equal({
        error_code: 400,
        message: 'Idempotency-Key: holds a character HTTP does not allow in a header value (a control character)',
      })
    },
  )

  it('`distributary start` logs JSON lines, serves, and exits 0 on SIGTERM', async () => {
    const port = await closedPort()
    const child = spawn(process.execPath, cliArgs('start'), {
      cwd: PROJECT_ROOT,
      env: { ...process.env, ...externalEnv, HTTP_PORT: String(port) },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (out += d.toString()))
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
    try {
      await waitFor(() => out.includes('platform listening'), { timeoutMs: 30_000, what: 'the listening log line' })
      expect((await fetch(`http://127.0.0.1:${port}/health`)).status).to.equal(200)
    } finally {
      child.kill('SIGTERM')
    }
    expect(await exited).to.equal(0)
    const lines = out.trim().split('\n')
    for (const line of lines) {
      const rec = JSON.parse(line) as { time: string; level: string; msg: string }
      expect(rec).to.have.keys([
        'time',
        'level',
        'msg',
        'service',
        ...Object.keys(rec).filter((k) => !['time', 'level', 'msg', 'service'].includes(k)),
      ])
    }
    expect(lines.some((l) => (JSON.parse(l) as { msg: string }).msg === 'platform stopped')).to.equal(true)
  })

  it('a bad setting stops `distributary start` with a message naming it and a non-zero exit', async () => {
    const child = spawn(process.execPath, cliArgs('start'), {
      cwd: PROJECT_ROOT,
      env: { ...process.env, HTTP_PORT: 'eighty' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let err = ''
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)))
    expect(code).to.not.equal(0)
    expect(err).to.contain('http.port (env HTTP_PORT)')
  })
})
