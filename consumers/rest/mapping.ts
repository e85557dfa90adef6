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
 * `sink.bodyMapping` and the position). It runs in the mapping sandbox (mapping-sandbox.ts: separate
 * processes with a time, memory and output limit), never on the worker's event loop; one that fails
 * at run time for one event (a type error, no result, over a limit) is a DataError: that event goes to
 * the dead letters with the reason, the others flow on.
 */
import jsonata from 'jsonata'
import { DataError } from '../../common/errors.ts'
import type { SinkRecord } from '../../connectors/sink/types.ts'
import { describeFailure, type MappingSandbox } from './mapping-sandbox.ts'

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

/** A mapping holds something besides white space (the API document's pattern for every mapping; mappingProblem too). */
export const MAPPING_PATTERN = '\\S'

/** Why a mapping does not compile, or null. Parsing only: nothing of the expression runs here. */
export function mappingProblem(expression: string): MappingProblem | null {
  if (expression.trim() === '') return { message: 'is empty; leave it out to send the event value as it is' }
  try {
    jsonata(expression)
    return null
  } catch (err) {
    const e = err as JsonataFailure
    return {
      message: `is not a valid JSONata expression: ${describeFailure(e)}`,
      ...(e.position !== undefined ? { position: e.position } : {}),
      ...(e.code ? { code: e.code } : {}),
    }
  }
}

/** The envelope a mapping sees, as JSON text (what the partner could have received as a webhook). */
export function mappingInput(record: SinkRecord): string {
  try {
    return JSON.stringify({
      key: record.key,
      value: record.value,
      eventId: record.eventId,
      eventType: record.eventType,
      timestamp: new Date(record.timestamp).toISOString(),
      topic: record.topic,
      partition: record.partition,
      offset: record.offset,
    })
  } catch (err) {
    throw notJson(record, err)
  }
}

const notJson = (record: SinkRecord, err: unknown) =>
  new DataError(
    `event ${record.eventId} cannot be serialised to JSON: ${err instanceof Error ? err.message : String(err)}`,
    { eventId: record.eventId },
    { cause: err },
  )

/** A subscription's mapping: `body(record)` is the JSON request body of one event, mapped in the sandbox. */
export class BodyMapping {
  constructor(
    readonly source: string,
    private readonly sandbox: MappingSandbox,
    /** Whose mapping it is (the subscription id): the sandbox's unit of fairness, named in limit errors. */
    readonly owner: string,
  ) {}

  /** The mapped body of one event; a DataError says why it could not be mapped. */
  body(record: SinkRecord, signal?: AbortSignal): Promise<string> {
    return this.sandbox.map(this.owner, this.source, mappingInput(record), record.eventId, signal)
  }
}

/** The JSON request body of one event: the mapped value, or the event value when there is no mapping. */
export async function eventBody(
  record: SinkRecord,
  mapping: BodyMapping | undefined,
  signal?: AbortSignal,
): Promise<string> {
  if (mapping) return mapping.body(record, signal)
  let body: string | undefined
  try {
    body = JSON.stringify(record.value)
  } catch (err) {
    throw notJson(record, err)
  }
  if (body === undefined) throw new DataError(`event ${record.eventId} has no JSON body`, { eventId: record.eventId })
  return body
}
