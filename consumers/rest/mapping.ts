/**
 * Declarative body mappings (JSONata, https://jsonata.org). The expression is evaluated against the
 * event envelope, the JSON a webhook would carry plus the Kafka coordinates:
 *
 *   { key, value, eventId, eventType, timestamp (ISO 8601), topic, partition, offset }
 *
 * e.g. `{ "externalId": value.sku, "available": value.available, "updatedAt": timestamp }`.
 * Without a mapping the body is the event value as it is.
 *
 * A mapping is compiled and validated when the subscription is saved (a syntax error is a 422 naming
 * `sink.bodyMapping` and the position); one that fails at run time for one event (a type error, no
 * result, over its time or depth budget) is a DataError: that event goes to the dead letters with the
 * reason, the others flow on.
 */
import jsonata from 'jsonata'
import { DataError } from '../../common/errors.ts'
import type { SinkRecord } from '../../connectors/sink/types.ts'

/** Evaluation budget per event: a mapping that loops or recurses without end fails that event only. */
const MAPPING_OPTIONS = { timeout: 1000, stack: 200, sequence: 100_000 }

export interface MappingProblem {
  message: string
  /** Character offset of the error in the expression (JSONata's `position`). */
  position?: number
  code?: string
}

interface JsonataFailure {
  code?: string
  position?: number
  token?: string
  message?: string
}

const describe = (e: JsonataFailure): string => `${e.message ?? String(e)}${e.code ? ` (${e.code}` : ''}${e.position !== undefined ? `${e.code ? ', ' : ' ('}at position ${e.position}` : ''}${e.code || e.position !== undefined ? ')' : ''}`

/** Why a mapping does not compile, or null. */
export function mappingProblem(expression: string): MappingProblem | null {
  if (expression.trim() === '') return { message: 'is empty; leave it out to send the event value as it is' }
  try {
    jsonata(expression, MAPPING_OPTIONS)
    return null
  } catch (err) {
    const e = err as JsonataFailure
    return { message: `is not a valid JSONata expression: ${describe(e)}`, ...(e.position !== undefined ? { position: e.position } : {}), ...(e.code ? { code: e.code } : {}) }
  }
}

/** The envelope a mapping sees, as plain JSON (what the partner could have received as a webhook). */
export function mappingInput(record: SinkRecord): unknown {
  try {
    return JSON.parse(
      JSON.stringify({
        key: record.key,
        value: record.value,
        eventId: record.eventId,
        eventType: record.eventType,
        timestamp: new Date(record.timestamp).toISOString(),
        topic: record.topic,
        partition: record.partition,
        offset: record.offset,
      }),
    )
  } catch (err) {
    throw new DataError(`event ${record.eventId} cannot be serialised to JSON: ${err instanceof Error ? err.message : String(err)}`, { eventId: record.eventId }, { cause: err })
  }
}

/** JSONata functions are objects (`_jsonata_lambda`, `_jsonata_function`), not JSON. */
function isLambda(v: unknown): boolean {
  return v !== null && typeof v === 'object' && ('_jsonata_lambda' in v || '_jsonata_function' in v)
}

function noFunctions(_key: string, v: unknown): unknown {
  if (typeof v === 'function' || isLambda(v)) throw new Error('the mapping produced a function, not JSON')
  return v
}

/** A compiled mapping: `body(record)` is the JSON request body of one event. */
export class BodyMapping {
  readonly #expression: jsonata.Expression

  constructor(readonly source: string) {
    this.#expression = jsonata(source, MAPPING_OPTIONS)
  }

  /** The mapped value of one event; a DataError says why it could not be mapped. */
  async map(record: SinkRecord): Promise<unknown> {
    const input = mappingInput(record)
    let out: unknown
    try {
      out = await this.#expression.evaluate(input)
    } catch (err) {
      throw new DataError(`body mapping failed for event ${record.eventId}: ${describe(err as JsonataFailure)}`, { eventId: record.eventId, mappingError: (err as JsonataFailure).code }, { cause: err })
    }
    if (out === undefined) throw new DataError(`body mapping produced no value for event ${record.eventId} (the expression matched nothing)`, { eventId: record.eventId })
    if (typeof out === 'function' || isLambda(out)) throw new DataError(`body mapping produced a function for event ${record.eventId}, not JSON`, { eventId: record.eventId })
    return out
  }
}

/** The JSON request body of one event: the mapped value, or the event value when there is no mapping. */
export async function eventBody(record: SinkRecord, mapping: BodyMapping | undefined): Promise<string> {
  const value = mapping ? await mapping.map(record) : record.value
  let body: string | undefined
  try {
    body = mapping ? JSON.stringify(value, noFunctions) : JSON.stringify(value)
  } catch (err) {
    throw new DataError(`event ${record.eventId} cannot be serialised to JSON: ${err instanceof Error ? err.message : String(err)}`, { eventId: record.eventId }, { cause: err })
  }
  if (body === undefined) throw new DataError(`event ${record.eventId} has no JSON body`, { eventId: record.eventId })
  return body
}
