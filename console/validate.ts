/**
 * A console form is validated as the API validates the same request: its body is checked against
 * the request schema of the OpenAPI document (api/openapi/document.ts, the one the management API's
 * validator uses), then the control plane checks the rest (grants, URLs, the sink's own rules). The
 * errors name the field as the API's problems do (`sink.url`, `eventTypes[0]`).
 */
import { createRequire } from 'node:module'
import { openApiDocumentCopy } from '../api/openapi/document.ts'
import { readableMessage } from '../api/openapi/parts.ts'
import { RequestInvalidError, type FieldError } from '../control-plane/errors.ts'
import { SINK_PLUGINS } from '../consumers/plugins.ts'
import { field, type Ctx } from './context.ts'

interface AjvError {
  instancePath: string
  message?: string
  keyword: string
  params: Record<string, unknown>
}
type Validate = ((data: unknown) => boolean) & { errors?: AjvError[] | null }
interface AjvLike {
  addSchema(schema: object, key?: string): void
  getSchema(ref: string): Validate | undefined
}

const require = createRequire(import.meta.url)
const Ajv2020 = require('ajv8/dist/2020').default as new (o: object) => AjvLike

let ajv: AjvLike | undefined
const DOC_ID = 'urn:distributary:openapi'

function validator(schemaName: string): Validate {
  if (!ajv) {
    ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false })
    ajv.addSchema({ ...openApiDocumentCopy(), $id: DOC_ID })
  }
  const v = ajv.getSchema(`${DOC_ID}#/components/schemas/${schemaName}`)
  if (!v) throw new Error(`no schema ${schemaName} in the OpenAPI document`)
  return v
}

/** `/sink/url` → `sink.url`, `/eventTypes/0` → `eventTypes[0]`. */
function fieldName(e: AjvError): string {
  const parts = e.instancePath.split('/').slice(1)
  if (e.keyword === 'required' && typeof e.params.missingProperty === 'string') parts.push(e.params.missingProperty)
  if (e.keyword === 'additionalProperties' && typeof e.params.additionalProperty === 'string')
    parts.push(e.params.additionalProperty)
  return parts.reduce((acc, p) => (/^\d+$/.test(p) ? `${acc}[${p}]` : acc === '' ? p : `${acc}.${p}`), '') || 'body'
}

/** The errors of `body` against the document's `schemaName` (empty: valid). */
export function schemaErrors(schemaName: string, body: unknown): FieldError[] {
  const v = validator(schemaName)
  if (v(body)) return []
  const seen = new Set<string>()
  const out: FieldError[] = []
  for (const e of v.errors ?? []) {
    // a `oneOf` of sink types reports every branch: keep the first message per field
    const field = fieldName(e)
    if (seen.has(field) || e.keyword === 'oneOf' || e.keyword === 'if') continue
    seen.add(field)
    out.push({ field, message: readableMessage(e.message ?? 'is invalid') })
  }
  return out
}

/**
 * An action form (`action`, an optional `reason`: the deal and lead pages) as the API's request body,
 * checked against the API's request schema: the 422 the API would answer, naming the field.
 */
export function actionBody(
  form: Ctx['form'],
  schemaName: 'DealAction' | 'LeadAction',
): { action: string; reason?: string } {
  const reason = field(form, 'reason')
  const body = { action: field(form, 'action'), ...(reason !== '' ? { reason } : {}) }
  const errors = schemaErrors(schemaName, body)
  if (errors.length > 0) throw new RequestInvalidError(errors)
  return body
}

/**
 * Throws the 422 the API would answer. A sink is judged against its own type's schema (the document's
 * discriminator), so a REST sink's errors are not mixed with the webhook's and MongoDB's.
 */
export function checkAgainstSchema(
  schemaName: 'SubscriptionCreate' | 'SubscriptionPatch',
  body: { sink?: { type?: unknown } },
): void {
  let errors = schemaErrors(schemaName, body)
  const type = body.sink?.type
  const plugin =
    typeof type === 'string' && Object.hasOwn(SINK_PLUGINS, type)
      ? SINK_PLUGINS[type as keyof typeof SINK_PLUGINS]
      : undefined
  if (plugin) {
    const sinkErrors = schemaErrors(plugin.schemaName, body.sink).map((e) => ({
      ...e,
      field: e.field === 'body' ? 'sink' : `sink.${e.field}`,
    }))
    errors = [...errors.filter((e) => e.field !== 'sink' && !e.field.startsWith('sink.')), ...sinkErrors]
  }
  if (errors.length > 0) throw new RequestInvalidError(errors)
}
