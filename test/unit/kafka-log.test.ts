import { expect } from 'chai'
import { logLevel } from 'kafkajs'
import { kafkaLogCreator } from '../../common/kafka/index.ts'
import { createLogger } from '../../common/logger.ts'

describe('kafkajs log entries in the platform log', () => {
  const entries = (level: number, namespace: string, log: Record<string, unknown> & { message: string }) => {
    const lines: Array<{ level: string; msg: string; namespace?: string; error?: string }> = []
    const log1 = kafkaLogCreator(createLogger({ level: 'debug', write: (l) => lines.push(JSON.parse(l)) }))()
    log1({ namespace, level, log: { timestamp: 'x', logger: 'kafkajs', ...log } })
    return lines
  }

  it('demotes a broker response with a retriable error code (kafkajs retries it) to debug', () => {
    for (const error of [
      'The group coordinator is not available',
      'This server is not the leader for that topic-partition',
    ]) {
      const [line] = entries(logLevel.ERROR, 'Connection', {
        message: 'Response GroupCoordinator(key: 10, version: 2)',
        error,
        correlationId: 2,
      })
      expect(line).to.include({ level: 'debug', namespace: 'Connection', error })
    }
  })

  it('keeps a non-retriable broker error, and any other kafkajs error, at error level', () => {
    const [denied] = entries(logLevel.ERROR, 'Connection', {
      message: 'Response Produce(key: 0, version: 7)',
      error: 'Not authorized to access topics: [Topic authorization failed]',
    })
    expect(denied).to.include({ level: 'error' })
    const [crash] = entries(logLevel.ERROR, 'Consumer', {
      message: 'Crash: KafkaJSNumberOfRetriesExceeded',
      error: 'The group coordinator is not available',
    })
    expect(crash).to.include({ level: 'error' })
  })

  it('demotes the idempotent producer retry-limit notice, keeps other warnings', () => {
    expect(
      entries(logLevel.WARN, 'Producer', {
        message: 'Limiting retries for the idempotent producer may invalidate EoS guarantees',
      })[0],
    ).to.include({ level: 'debug' })
    expect(entries(logLevel.WARN, 'Connection', { message: 'Connection timeout' })[0]).to.include({ level: 'warn' })
  })
})
