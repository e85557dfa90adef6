// The connectors' public face: the sink side (its own barrel, connectors/sink/index.ts, says what it
// exports) and the retry policies both sides use.
export * from './sink/index.ts'
export * from './retry.ts'
