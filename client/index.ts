/**
 * The management API's typed client: openapi-fetch over the types generated from the OpenAPI document
 * (client/openapi.d.ts, generated from api/openapi/document.ts by `npm ci` and `npm run client`), so a path, a
 * parameter or a body the API does not accept is a compile error, not a 400 at run time.
 *
 *   const api = createManagementClient({ baseUrl: 'http://127.0.0.1:8080', apiKey })
 *   const org = await data(api.POST('/organizations', { body: { kind: 'partner', name: 'Northwind', slug: 'northwind' }
 * }))
 *
 * Every answer that is not 2xx is thrown as one ApiProblem (status, title, detail and the fields at
 * fault, from the API's RFC 9457 problem+json), and a server that does not answer as ApiUnreachable
 * naming the URL: a caller holds the data or an error, never an unread error answer. `data()` gives the
 * answer's body with its type; `allPages()` follows a list's cursor to the end.
 */
import createClient, { type Client } from 'openapi-fetch'
import type { components, operations, paths } from './openapi.d.ts'

export type { components, operations, paths }
/** The API's schemas by name, e.g. `Schemas['SubscriptionCreate']`. */
export type Schemas = components['schemas']
export type ManagementClient = Client<paths>

export interface ManagementClientOptions {
  /** Where the platform answers, e.g. http://127.0.0.1:8080 (the client adds the document's /v1). */
  baseUrl: string
  /** Sent as `Authorization: Bearer <key>`; none: only the routes without security answer. */
  apiKey?: string | undefined
  /** Another fetch (tests, a proxy agent); default: the global one. */
  fetch?: typeof globalThis.fetch
}

interface FieldError {
  field: string
  message: string
}

/**
 * An answer that is not 2xx, read from its problem+json (or, from something else than the API, its status and text).
 */
export class ApiProblem extends Error {
  override readonly name = 'ApiProblem'
  readonly title: string
  readonly detail: string | undefined
  readonly type: string | undefined
  /** The fields at fault (`body.name`, `profile.tier`, `Authorization`, ...), as the API names them. */
  readonly errors: FieldError[]

  constructor(
    readonly status: number,
    body: unknown,
    statusText = '',
  ) {
    const p = (body !== null && typeof body === 'object' ? body : {}) as {
      title?: unknown
      detail?: unknown
      type?: unknown
      errors?: unknown
    }
    const title = typeof p.title === 'string' ? p.title : statusText
    // an answer that is not problem+json (a proxy's error page): its text, shortened, is the detail
    const detail =
      typeof p.detail === 'string'
        ? p.detail
        : typeof body === 'string' && body.trim() !== ''
          ? body.trim().slice(0, 200)
          : undefined
    const errors = Array.isArray(p.errors)
      ? (p.errors as Array<Partial<FieldError>>)
          .filter((e) => typeof e?.field === 'string')
          .map((e) => ({ field: e.field!, message: String(e.message ?? 'is invalid') }))
      : []
    // One line naming every field at fault once: a 400's detail lists them all already ("slug: must match
    // ..."), a 409's detail is its one field's message (then "slug: " leads it), the rest follow in brackets.
    let text = detail
    const others: string[] = []
    for (const e of errors) {
      const named = `${e.field}: ${e.message}`
      if (text?.includes(named)) continue
      if (text === e.message) text = named
      else others.push(named)
    }
    const more = others.length > 0 ? ` (${others.join('; ')})` : ''
    const line = `${status}${title ? ` ${title}` : ''}${text ? `: ${text}` : ''}${more}`
    super(line.replace(/\s*\n\s*/g, ' '))
    this.title = title
    this.detail = detail
    this.type = typeof p.type === 'string' ? p.type : undefined
    this.errors = errors
  }
}

/** The platform does not answer at all (not started, wrong URL): the connection failed. */
export class ApiUnreachable extends Error {
  override readonly name = 'ApiUnreachable'
  constructor(
    readonly baseUrl: string,
    cause: unknown,
  ) {
    super(`the management API at ${baseUrl} does not answer`, { cause })
  }
}

export function createManagementClient(options: ManagementClientOptions): ManagementClient {
  const baseUrl = options.baseUrl.replace(/\/+$/, '')
  const client = createClient<paths>({
    baseUrl: `${baseUrl}/v1`,
    ...(options.fetch ? { fetch: options.fetch } : {}),
    ...(options.apiKey ? { headers: { authorization: `Bearer ${options.apiKey}` } } : {}),
  })
  client.use({
    async onResponse({ response }) {
      if (response.ok) return undefined
      const text = await response.clone().text()
      let body: unknown = text
      try {
        body = JSON.parse(text)
      } catch {
        // not JSON: ApiProblem keeps the text as the detail
      }
      throw new ApiProblem(response.status, body, response.statusText)
    },
    onError({ error }) {
      // fetch() itself failed (refused, reset, DNS): one error naming where it tried; an abort stays an abort
      return (error as Error | undefined)?.name === 'AbortError' ? (error as Error) : new ApiUnreachable(baseUrl, error)
    },
  })
  return client
}

/**
 * The body of a call's 2xx answer, typed by the operation (undefined for a 204). A non-2xx answer
 * never gets here: the client threw an ApiProblem for it.
 */
export async function data<A extends { data?: unknown; error?: unknown; response: Response }>(
  call: Promise<A>,
): Promise<Body<A>> {
  const answer = await call
  if (answer.error !== undefined || !answer.response.ok)
    throw new ApiProblem(answer.response.status, answer.error, answer.response.statusText)
  return answer.data as Body<A>
}

/** The 2xx body's type; undefined for an answer without one (204, typed `never` by openapi-fetch). */
type Body<A extends { data?: unknown }> = [Exclude<A['data'], undefined>] extends [never]
  ? undefined
  : Exclude<A['data'], undefined>

/** Every item of a list, page after page (`nextCursor` until null); `page(cursor)` reads one page. */
export async function allPages<T>(
  page: (cursor: string | undefined) => Promise<{ items: T[]; nextCursor: string | null }>,
): Promise<T[]> {
  const items: T[] = []
  let cursor: string | undefined
  do {
    const next = await page(cursor)
    items.push(...next.items)
    cursor = next.nextCursor ?? undefined
  } while (cursor !== undefined)
  return items
}
