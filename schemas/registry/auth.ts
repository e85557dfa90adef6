/**
 * Authentication and authorization of the built-in registry, as Confluent clients speak it: HTTP
 * basic auth (`basic.auth.user.info` = "user:password", `basic.auth.credentials.source=USER_INFO`),
 * or `Authorization: Bearer <key>` (bearer.auth.token). Who may do what is decided by a RegistryAuth
 * that the composition root provides (cli/platform.ts, with control-plane/registry-access.ts), so
 * that schemas/ depends on nothing above it. Errors are Confluent's JSON shape: 401 with error_code
 * 401 (as its basic-auth realm answers), 403 with error_code 40301 (as its RBAC plugin answers).
 */
import crypto from 'node:crypto'
import type { Request } from 'express'
import { errors } from './errors.ts'

/** What a caller may do. Subjects: a read covers GET, lookups and compatibility checks. */
export interface RegistryPrincipal {
  /** Who, for logs and messages (a key id, "internal", "anonymous"). */
  name: string
  /** Global config and mode, every subject. */
  admin: boolean
  canRead(subject: string): boolean
  /** Register a version. */
  canRegister(subject: string): boolean
  /** Delete versions or the subject, set its config or mode. */
  canManage(subject: string): boolean
}

export interface RegistryAuth {
  /** The principal of these credentials, or null when they are not valid. May throw a RegistryError (e.g. 429). */
  authenticate(user: string, password: string, client: string): Promise<RegistryPrincipal | null>
  /** Requests without credentials from a loopback address may read everything (development only). */
  anonymousLoopbackReads?: boolean
}

export const INTERNAL_USER = 'distributary-internal'

/**
 * The password of the platform's own processes (API, workers, CLI) on the built-in registry: an HMAC
 * of the secrets key ring they all have (secrets.encryptionKeys), so it needs no setting of its own
 * and nobody without those keys can compute it.
 */
export function internalPassword(keyRing: string): string {
  return crypto
    .createHmac('sha256', keyRing)
    .update('distributary built-in schema registry, internal principal, v1')
    .digest('base64url')
}

/** A principal that may do everything (the platform's own processes, admin keys). */
export function adminPrincipal(name: string): RegistryPrincipal {
  return { name, admin: true, canRead: () => true, canRegister: () => true, canManage: () => true }
}

const ANONYMOUS_READER: RegistryPrincipal = {
  name: 'anonymous',
  admin: false,
  canRead: () => true,
  canRegister: () => false,
  canManage: () => false,
}

/** Credentials of a request: basic (user, password) or bearer (no user); undefined: none sent. */
export function credentialsOf(req: Request): { user: string; password: string } | undefined {
  const header = req.get('authorization') ?? ''
  const basic = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header)
  if (basic) {
    const text = Buffer.from(basic[1]!, 'base64').toString('utf8')
    const colon = text.indexOf(':')
    return colon < 0 ? { user: text, password: '' } : { user: text.slice(0, colon), password: text.slice(colon + 1) }
  }
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(header)
  if (bearer) return { user: '', password: bearer[1]! }
  return header === '' ? undefined : { user: '', password: '' }
}

const isLoopback = (addr: string | undefined): boolean =>
  !!addr && (addr === '::1' || addr.startsWith('127.') || addr.startsWith('::ffff:127.'))

/** The principal of a request; throws the 401 when there is none. */
export async function principalOf(auth: RegistryAuth, req: Request): Promise<RegistryPrincipal> {
  const creds = credentialsOf(req)
  const client = req.socket.remoteAddress ?? 'unknown'
  if (!creds) {
    if (auth.anonymousLoopbackReads && isLoopback(req.socket.remoteAddress)) return ANONYMOUS_READER
    throw errors.unauthorized(
      'Unauthorized: send credentials with HTTP basic auth (basic.auth.user.info = "<user>:<API key>")',
    )
  }
  const principal = creds.password === '' ? null : await auth.authenticate(creds.user, creds.password, client)
  if (!principal)
    throw errors.unauthorized('Unauthorized: the credentials are not valid (unknown, revoked or expired API key)')
  return principal
}
