/**
 * The building blocks of the management API document, shared by its parts (document.ts, sources.ts):
 * references, JSON bodies, and the operations with the problem answers every one of them may give.
 */

export const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` })
export const problems = (...codes: number[]) => Object.fromEntries(codes.map((c) => [String(c), { $ref: `#/components/responses/Problem${c}` }]))
export const json = (schema: unknown, example?: unknown) => ({ content: { 'application/json': { schema, ...(example !== undefined ? { example } : {}) } } })
export const body = (schema: unknown, example: unknown) => ({ required: true, ...json(schema, example) })
export const ok = (description: string, schema: unknown) => ({ description, ...json(schema) })
export const PAGE = [{ $ref: '#/components/parameters/Limit' }, { $ref: '#/components/parameters/Cursor' }]
export const IDEMPOTENCY = { $ref: '#/components/parameters/IdempotencyKey' }
export const dateTime = { type: 'string', format: 'date-time' }
export const nullableDateTime = { type: ['string', 'null'], format: 'date-time' }

/** A change: with a body it may also be too large (413) or not JSON (415). */
export const mutation = (summary: string, tag: string, operationId: string, params: unknown[], responses: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  summary,
  tags: [tag],
  operationId,
  parameters: params,
  responses: { ...responses, ...problems(400, 401, 403, 404, 409, ...(extra.requestBody ? [413, 415] : []), 422, 429) },
  ...extra,
})

/** A read: a list may also get a cursor this API did not return (422 naming `cursor`). */
export const read = (summary: string, tag: string, operationId: string, params: unknown[], response: unknown) => ({
  summary,
  tags: [tag],
  operationId,
  parameters: params,
  responses: { '200': response, ...problems(400, 401, 404, ...(params.includes(PAGE[1]) ? [422] : []), 429) },
})
