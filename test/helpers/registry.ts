/** A built-in schema registry on 127.0.0.1:0 over a log topic of its own, for one test suite. */
import { createLogger } from '../../common/logger.ts'
import { startSchemaRegistry, type RegistryServer } from '../../schemas/registry/index.ts'
import { testConfig, testKafka, uniqueName } from './env.ts'

// Tests provoke broker outages on purpose: their kafkajs errors stay out of the output unless LOG_LEVEL=debug.
export const quietLogger =
  process.env.LOG_LEVEL === 'debug'
    ? createLogger({ level: 'debug' })
    : createLogger({ level: 'error', write: () => undefined })

export async function startTestRegistry(topic = uniqueName('schemas')): Promise<RegistryServer & { topic: string }> {
  const r = await startSchemaRegistry(testConfig(), quietLogger, { port: 0, host: '127.0.0.1', topic, auth: 'none' })
  return Object.assign(r, { topic })
}

export async function deleteTopics(...topics: string[]): Promise<void> {
  const admin = testKafka().admin()
  await admin.connect()
  try {
    await admin.deleteTopics({ topics, timeout: 10_000 }).catch(() => undefined)
  } finally {
    await admin.disconnect()
  }
}

export async function http(
  url: string,
  method = 'GET',
  body?: unknown,
  contentType = 'application/vnd.schemaregistry.v1+json',
) {
  const res = await fetch(url, {
    method,
    headers: body === undefined ? {} : { 'content-type': contentType },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  })
  const text = await res.text()
  let json: any
  try {
    json = JSON.parse(text)
  } catch {
    json = text
  }
  return { status: res.status, type: res.headers.get('content-type'), body: json }
}
