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
import { adminPrincipal, principalOf, type RegistryAuth, type RegistryPrincipal } from './auth.ts'

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
const text = (req: Request, name: string): string =>
  typeof req.query[name] === 'string' ? (req.query[name] as string) : ''
/**
 * offset and limit (Confluent: offset 0, limit -1 = all); a value that is not an integer is a 400, as JAX-RS answers.
 */
const read = (req: Request, res: Response): true => {
  canRead(res, param(req, 'subject'))
  return true
}
const manage = (req: Request, res: Response): true => {
  canManage(res, param(req, 'subject'))
  return true
}
const vis = (res: Response): { visible?: (s: string) => boolean } => {
  const v = visible(res)
  return v ? { visible: v } : {}
}
function page(req: Request, res?: Response): { offset: number; limit: number; visible?: (s: string) => boolean } {
  const int = (name: string, dflt: number): number => {
    const v = text(req, name)
    if (v === '') return dflt
    if (!/^-?\d+$/.test(v)) throw errors.invalidParam(name, v)
    return Number(v)
  }
  return { offset: int('offset', 0), limit: int('limit', -1), ...(res ? vis(res) : {}) }
}
/** The query of the lists of where a schema id is used: its subjects, or its subjects' versions. */
const usesOf = (req: Request, res: Response) => ({
  deleted: flag(req, 'deleted'),
  subject: text(req, 'subject'),
  ...page(req, res),
})
/** The query of the lists of subjects and of schemas: those under a subject prefix, deleted ones too or not. */
const listing = (req: Request, res: Response) => ({
  prefix: text(req, 'subjectPrefix'),
  deleted: flag(req, 'deleted'),
  ...page(req, res),
})
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

const OPEN = adminPrincipal('open')
const who = (res: Response): RegistryPrincipal => res.locals.principal as RegistryPrincipal
function need(p: RegistryPrincipal, ok: boolean, operation: string, subject: string | null): void {
  if (!ok)
    throw errors.forbidden(
      `User ${p.name} is denied operation ${operation} on ` +
        `${subject === null ? 'the global config and mode' : `Subject: ${subject}`}`,
    )
}
const canRead = (res: Response, subject: string) => need(who(res), who(res).canRead(subject), 'Read', subject)
const canManage = (res: Response, subject: string | null) =>
  need(who(res), subject === null ? who(res).admin : who(res).canManage(subject), 'Write', subject)
const visible = (res: Response) => (who(res).admin ? undefined : (s: string) => who(res).canRead(s))

/**
 * `auth` undefined: no authentication (embedding and tests); the platform always passes one (see
 * cli/platform.ts and docs/schema-registry.md).
 */
export function createRegistryApp(
  registry: SchemaRegistryService,
  logger: Logger,
  auth?: RegistryAuth,
): express.Express {
  const app = express()
  app.disable('x-powered-by')
  app.set('etag', false)
  // Authentication before the body is read: an anonymous caller gets its 401 without any parsing.
  app.use((req: Request, res: Response, next: NextFunction) => {
    if (!auth) {
      res.locals.principal = OPEN
      return next()
    }
    principalOf(auth, req).then((p) => {
      res.locals.principal = p
      next()
    }, next)
  })
  app.use(express.json({ type: () => true, limit: BODY_LIMIT }))
  // the routes: each answers 200 with what its handler returns (h)
  const get = (path: string, fn: Handler) => app.get(path, h(fn))
  const post = (path: string, fn: Handler) => app.post(path, h(fn))
  const put = (path: string, fn: Handler) => app.put(path, h(fn))
  const del = (path: string, fn: Handler) => app.delete(path, h(fn))
  /** A version, its schema in the `format` asked for (none: as registered). */
  const formatted = <V extends { id: number; schema: string }>(req: Request, v: V): V => {
    const format = text(req, 'format')
    return format ? { ...v, schema: registry.formatted(v.id, format) } : v
  }

  get('/', () => ({}))
  get('/schemas/types', () => [...SCHEMA_TYPES])

  get('/subjects', (req, res) => registry.listSubjects({ ...listing(req, res), deletedOnly: flag(req, 'deletedOnly') }))
  get(
    '/subjects/:subject/versions',
    (req, res) =>
      read(req, res) &&
      registry.listVersions(param(req, 'subject'), {
        deleted: flag(req, 'deleted'),
        deletedOnly: flag(req, 'deletedOnly'),
        deletedAsNegative: flag(req, 'deletedAsNegative'),
        ...page(req),
      }),
  )
  post('/subjects/:subject/versions', (req, res) => {
    const subject = param(req, 'subject')
    need(who(res), who(res).canRegister(subject), 'Write', subject)
    const refs = (req.body as { references?: unknown } | undefined)?.references
    if (Array.isArray(refs))
      for (const r of refs)
        if (typeof (r as { subject?: unknown })?.subject === 'string') canRead(res, (r as { subject: string }).subject)
    return registry.register(subject, req.body ?? {}, {
      normalize: flag(req, 'normalize'),
      force: flag(req, 'force'),
    })
  })
  get('/subjects/:subject/versions/:version', (req, res) => {
    read(req, res)
    return formatted(req, registry.getVersion(param(req, 'subject'), param(req, 'version'), flag(req, 'deleted')))
  })
  get('/subjects/:subject/versions/:version/schema', (req, res) => {
    read(req, res)
    const v = registry.getVersion(param(req, 'subject'), param(req, 'version'), flag(req, 'deleted'))
    raw(res, 200, registry.formatted(v.id, text(req, 'format')))
  })
  get(
    '/subjects/:subject/versions/:version/referencedby',
    (req, res) =>
      read(req, res) &&
      registry.referencedBy(param(req, 'subject'), param(req, 'version'), {
        deleted: flag(req, 'deleted'),
        ...page(req),
      }),
  )
  del(
    '/subjects/:subject/versions/:version',
    (req, res) =>
      manage(req, res) && registry.deleteVersion(param(req, 'subject'), param(req, 'version'), flag(req, 'permanent')),
  )
  post('/subjects/:subject', (req, res) => {
    read(req, res)
    const opts = { deleted: flag(req, 'deleted'), normalize: flag(req, 'normalize') }
    return formatted(req, registry.lookup(param(req, 'subject'), req.body ?? {}, opts))
  })
  del(
    '/subjects/:subject',
    (req, res) => manage(req, res) && registry.deleteSubject(param(req, 'subject'), flag(req, 'permanent')),
  )

  get('/schemas', (req, res) => registry.listSchemas({ ...listing(req, res), latestOnly: flag(req, 'latestOnly') }))
  get('/schemas/ids/:id', (req, res) =>
    registry.getById(schemaId(req), {
      subject: text(req, 'subject'),
      format: text(req, 'format'),
      fetchMaxId: flag(req, 'fetchMaxId'),
      ...vis(res),
    }),
  )
  get('/schemas/ids/:id/schema', (req, res) => {
    raw(
      res,
      200,
      registry.getById(schemaId(req), { subject: text(req, 'subject'), format: text(req, 'format'), ...vis(res) })
        .schema,
    )
  })
  get('/schemas/ids/:id/subjects', (req, res) => registry.subjectsOf(schemaId(req), usesOf(req, res)))
  get('/schemas/ids/:id/versions', (req, res) => registry.versionsOfId(schemaId(req), usesOf(req, res)))
  get('/schemas/guids/:guid', (req, res) => registry.getByGuid(param(req, 'guid'), text(req, 'format'), visible(res)))
  get('/schemas/guids/:guid/schema', (req, res) => {
    raw(res, 200, registry.getByGuid(param(req, 'guid'), text(req, 'format'), visible(res)).schema)
  })

  get('/config', () => registry.settings.getGlobalConfig())
  put('/config', (req, res) => canManage(res, null) ?? registry.settings.setConfig(null, req.body))
  del('/config', (_req, res) => canManage(res, null) ?? registry.settings.deleteConfig(null))
  get(
    '/config/:subject',
    (req, res) =>
      read(req, res) && registry.settings.getSubjectConfig(param(req, 'subject'), flag(req, 'defaultToGlobal')),
  )
  put(
    '/config/:subject',
    (req, res) => manage(req, res) && registry.settings.setConfig(param(req, 'subject'), req.body),
  )
  del('/config/:subject', (req, res) => manage(req, res) && registry.settings.deleteConfig(param(req, 'subject')))

  get('/mode', () => registry.settings.getMode(null, true))
  put('/mode', (req, res) => canManage(res, null) ?? registry.settings.setMode(null, req.body, flag(req, 'force')))
  del('/mode', (_req, res) => canManage(res, null) ?? registry.settings.deleteMode(null))
  get(
    '/mode/:subject',
    (req, res) => read(req, res) && registry.settings.getMode(param(req, 'subject'), flag(req, 'defaultToGlobal')),
  )
  put(
    '/mode/:subject',
    (req, res) => manage(req, res) && registry.settings.setMode(param(req, 'subject'), req.body, flag(req, 'force')),
  )
  del('/mode/:subject', (req, res) => manage(req, res) && registry.settings.deleteMode(param(req, 'subject')))

  const compat =
    (withVersion: boolean): Handler =>
    (req, res) => {
      read(req, res)
      const verbose = flag(req, 'verbose')
      const r = registry.checkCompatibility(
        param(req, 'subject'),
        withVersion ? param(req, 'version') : undefined,
        req.body ?? {},
        { verbose, normalize: flag(req, 'normalize') },
      )
      return verbose ? r : { is_compatible: r.is_compatible }
    }
  post('/compatibility/subjects/:subject/versions/:version', compat(true))
  post('/compatibility/subjects/:subject/versions', compat(false))

  app.use((req: Request, res: Response) => {
    send(res, 404, { error_code: 404, message: `HTTP 404 Not Found: no route for ${req.method} ${req.path}` })
  })
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    if (err instanceof RegistryError) {
      if (err.status === 401) res.set('WWW-Authenticate', 'Basic realm="SchemaRegistry", charset="UTF-8"')
      send(res, err.status, { error_code: err.errorCode, message: err.message })
      return
    }
    const e = err as { type?: string; status?: number; length?: number; limit?: number; message?: string }
    if (e.type === 'entity.parse.failed') {
      send(res, 422, {
        error_code: INVALID_SCHEMA,
        message: `Invalid schema: the request body is not valid JSON (${e.message})`,
      })
      return
    }
    if (e.type === 'entity.too.large') {
      send(res, 422, {
        error_code: INVALID_SCHEMA,
        message: `Invalid schema: the request body is ${e.length} bytes, more than the ${e.limit} allowed`,
      })
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
