/** The operations of the management OpenAPI document, for table-driven tests. */
import { openApiDocument } from '../../api/openapi/document.ts'

export interface Operation {
  method: string
  path: string
  operationId: string
  pathParams: string[]
  example: unknown
  hasBody: boolean
  paged: boolean
  public: boolean
  /** Which router serves it: the management API, or event ingestion (its own authentication). */
  router: 'management' | 'ingest'
}

const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const

/** The documented operations: the management API's (default: what its table tests cover), or all of them. */
export function operations(which: 'management' | 'all' = 'management'): Operation[] {
  const out: Operation[] = []
  for (const [path, item] of Object.entries(openApiDocument.paths as Record<string, Record<string, any>>)) {
    for (const m of METHODS) {
      const o = item[m]
      if (!o) continue
      const content = o.requestBody?.content?.['application/json']
      out.push({
        method: m.toUpperCase(),
        path,
        operationId: o.operationId,
        pathParams: [...path.matchAll(/\{(\w+)\}/g)].map((x) => x[1]!),
        example:
          content?.example ?? (Object.values(content?.examples ?? {})[0] as { value?: unknown } | undefined)?.value,
        hasBody: content !== undefined,
        paged: (o.parameters ?? []).some((p: any) => p.$ref === '#/components/parameters/Limit'),
        public: Array.isArray(o.security) && o.security.length === 0,
        router: o['x-distributary-router'] === 'ingest' ? 'ingest' : 'management',
      })
    }
  }
  return which === 'all' ? out : out.filter((o) => o.router === 'management')
}

export function fill(path: string, values: Record<string, string>): string {
  return path.replace(/\{(\w+)\}/g, (_m, name: string) => {
    const v = values[name]
    if (v === undefined)
      throw new Error(`no fixture value for path parameter {${name}} of ${path}: add one to the table`)
    return encodeURIComponent(v)
  })
}
