/**
 * The Confluent Schema Registry REST API (the subset Confluent clients use), as an express app.
 * Every answer is `application/vnd.schemaregistry.v1+json`; errors are `{"error_code", "message"}`.
 * Requests may be sent as application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json,
 * application/json or application/octet-stream: any body is read as JSON.
 */
import express, { type NextFunction, type Request, type Response } from 'express'
import type { Logger } from '../../common/logger.ts'
import { RegistryError, errors, INVALID_SCHEMA } from './errors.ts'
import { SCHEMA_TYPES, type SchemaRegistryService } from './registry.ts'

export const CONTENT_TYPE = 'application/vnd.schemaregistry.v1+json'
const BODY_LIMIT = 2 * 1024 * 1024

/** Buffer bodies keep express from appending "; charset=utf-8" to Confluent's content type. */
function raw(res: Response, status: number, text: string): void {
  res.status(status).set('Content-Type', CONTENT_TYPE).send(Buffer.from(text, 'utf8'))
}
function send(res: Response, status: number, body: unknown): void {
  raw(res, status, JSON.stringify(body))
}

const flag = (req: Request, name: string): boolean => String(req.query[name] ?? '').toLowerCase() === 'true'
const param = (req: Request, name: string): string => String((req.params as Record<string, string>)[name] ?? '')

function schemaId(req: Request): number {
  const raw = param(req, 'id')
  const id = Number(raw)
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(id)) throw errors.schemaNotFound()
  return id
}

type Handler = (req: Request, res: Response) => unknown | Promise<unknown>
const h =
  (fn: Handler) =>
  async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    try {
      const out = await fn(req, res)
      if (!res.headersSent) send(res, 200, out)
    } catch (err) {
      next(err)
    }
  }

export function createRegistryApp(registry: SchemaRegistryService, logger: Logger): express.Express {
  const app = express()
  app.disable('x-powered-by')
  app.set('etag', false)
  app.use(express.json({ type: () => true, limit: BODY_LIMIT }))

  app.get('/', h(() => ({})))
  app.get('/schemas/types', h(() => [...SCHEMA_TYPES]))

  app.get('/subjects', h((req) => registry.listSubjects(flag(req, 'deleted'), String(req.query.subjectPrefix ?? ''))))
  app.get('/subjects/:subject/versions', h((req) => registry.listVersions(param(req, 'subject'), flag(req, 'deleted'))))
  app.post('/subjects/:subject/versions', h(async (req) => ({ id: (await registry.register(param(req, 'subject'), req.body ?? {})).id })))
  app.get('/subjects/:subject/versions/:version', h((req) => registry.getVersion(param(req, 'subject'), param(req, 'version'), flag(req, 'deleted'))))
  app.get(
    '/subjects/:subject/versions/:version/schema',
    h((req, res) => {
      const v = registry.getVersion(param(req, 'subject'), param(req, 'version'), flag(req, 'deleted'))
      raw(res, 200, v.schema)
    }),
  )
  app.get('/subjects/:subject/versions/:version/referencedby', h((req) => registry.referencedBy(param(req, 'subject'), param(req, 'version'))))
  app.delete('/subjects/:subject/versions/:version', h((req) => registry.deleteVersion(param(req, 'subject'), param(req, 'version'), flag(req, 'permanent'))))
  app.post('/subjects/:subject', h((req) => registry.lookup(param(req, 'subject'), req.body ?? {}, flag(req, 'deleted'))))
  app.delete('/subjects/:subject', h((req) => registry.deleteSubject(param(req, 'subject'), flag(req, 'permanent'))))

  app.get('/schemas/ids/:id', h((req) => registry.getById(schemaId(req))))
  app.get(
    '/schemas/ids/:id/schema',
    h((req, res) => {
      raw(res, 200, registry.getById(schemaId(req)).schema)
    }),
  )
  app.get('/schemas/ids/:id/subjects', h((req) => registry.subjectsOf(schemaId(req), flag(req, 'deleted'))))
  app.get('/schemas/ids/:id/versions', h((req) => registry.versionsOfId(schemaId(req), flag(req, 'deleted'))))

  app.get('/config', h(() => registry.getGlobalConfig()))
  app.put('/config', h((req) => registry.setConfig(null, req.body)))
  app.delete('/config', h(() => registry.deleteConfig(null)))
  app.get('/config/:subject', h((req) => registry.getSubjectConfig(param(req, 'subject'), flag(req, 'defaultToGlobal'))))
  app.put('/config/:subject', h((req) => registry.setConfig(param(req, 'subject'), req.body)))
  app.delete('/config/:subject', h((req) => registry.deleteConfig(param(req, 'subject'))))

  const compat = (withVersion: boolean) =>
    h((req) => {
      const r = registry.checkCompatibility(param(req, 'subject'), withVersion ? param(req, 'version') : undefined, req.body ?? {})
      return flag(req, 'verbose') ? r : { is_compatible: r.is_compatible }
    })
  app.post('/compatibility/subjects/:subject/versions/:version', compat(true))
  app.post('/compatibility/subjects/:subject/versions', compat(false))

  app.use((req: Request, res: Response) => {
    send(res, 404, { error_code: 404, message: `HTTP 404 Not Found: no route for ${req.method} ${req.path}` })
  })
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    if (err instanceof RegistryError) {
      send(res, err.status, { error_code: err.errorCode, message: err.message })
      return
    }
    const e = err as { type?: string; status?: number; length?: number; limit?: number; message?: string }
    if (e.type === 'entity.parse.failed') {
      send(res, 422, { error_code: INVALID_SCHEMA, message: `Invalid schema: the request body is not valid JSON (${e.message})` })
      return
    }
    if (e.type === 'entity.too.large') {
      send(res, 422, { error_code: INVALID_SCHEMA, message: `Invalid schema: the request body is ${e.length} bytes, more than the ${e.limit} allowed` })
      return
    }
    if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
      send(res, e.status, { error_code: e.status, message: e.message ?? 'bad request' })
      return
    }
    logger.error('schema registry request failed', { method: req.method, path: req.path, err })
    send(res, 500, { error_code: 50001, message: `Error in the backend data store: ${e.message ?? String(err)}` })
  })
  return app
}
