/**
 * Console sessions: signing in with an API key (verified by ApiKeys.authenticate, under its limits on
 * failed attempts) opens a session; the browser holds only its random id in an HttpOnly,
 * SameSite=Strict cookie. The store keeps the SHA-256 of the id (a stolen copy of the collection
 * opens nothing), the principal, a CSRF token (synchronizer pattern: every form and every htmx request
 * sends it back) and an absolute expiry. Signing out deletes the document: the cookie is worthless at
 * once, in every process. Every request also re-reads the key: a revoked or expired key ends its
 * sessions. Expired documents are deleted explicitly (at every sign-in and by `sweep`), never by a TTL
 * index, which FerretDB may lack.
 */
import crypto from 'node:crypto'
import type { Collection, Db } from 'mongodb'
import type { ControlPlane } from '../control-plane/index.ts'
import { BOOTSTRAP_KEY_ID } from '../control-plane/api-keys.ts'
import type { Principal } from '../control-plane/types.ts'

export const SESSION_COOKIE = 'distributary_console'
/** Before sign-in: the double-submit token of the sign-in form (login CSRF). */
export const SIGNIN_COOKIE = 'distributary_console_signin'

export interface SessionDoc {
  /** SHA-256 (hex) of the session id the cookie holds. */
  _id: string
  principal: Principal
  /** The organization's name at sign-in (shown in the header). */
  organizationName?: string
  csrf: string
  createdAt: Date
  expiresAt: Date
}

export interface Session {
  principal: Principal
  organizationName?: string | undefined
  csrf: string
  expiresAt: Date
}

const hash = (id: string) => crypto.createHash('sha256').update(id).digest('hex')

export const randomToken = (): string => crypto.randomBytes(32).toString('base64url')

/** Constant-time comparison of two tokens (false when either is missing). */
export function sameToken(a: string | undefined, b: string | undefined): boolean {
  if (typeof a !== 'string' || typeof b !== 'string' || a.length === 0) return false
  const x = crypto.createHash('sha256').update(a).digest()
  const y = crypto.createHash('sha256').update(b).digest()
  return crypto.timingSafeEqual(x, y)
}

export class ConsoleSessions {
  readonly col: Collection<SessionDoc>

  constructor(
    db: Db,
    private readonly cp: ControlPlane,
    private readonly ttlMs: number,
  ) {
    this.col = db.collection<SessionDoc>('console_sessions')
  }

  async init(): Promise<void> {
    await this.col.createIndex({ expiresAt: 1 }, { name: 'expires' })
  }

  /** A new session for `principal`; returns the id for the cookie (never stored). */
  async open(principal: Principal, now = new Date()): Promise<{ id: string; session: Session }> {
    await this.sweep(now)
    const id = randomToken()
    const org = principal.organizationId
      ? await this.cp.cols.organizations.findOne({ _id: principal.organizationId }, { projection: { name: 1 } })
      : null
    const doc: SessionDoc = {
      _id: hash(id),
      principal,
      ...(org ? { organizationName: org.name } : {}),
      csrf: randomToken(),
      createdAt: now,
      expiresAt: new Date(now.getTime() + this.ttlMs),
    }
    await this.col.insertOne(doc)
    return {
      id,
      session: { principal, organizationName: doc.organizationName, csrf: doc.csrf, expiresAt: doc.expiresAt },
    }
  }

  /** The live session of a cookie value, or null (unknown, expired, signed out, or its key revoked or expired). */
  async find(id: string | undefined, now = new Date()): Promise<Session | null> {
    if (!id || id.length > 100) return null
    const doc = await this.col.findOne({ _id: hash(id) })
    if (!doc || doc.expiresAt <= now) return null
    if (doc.principal.keyId !== BOOTSTRAP_KEY_ID) {
      const key = await this.cp.cols.apiKeys.findOne(
        { _id: doc.principal.keyId },
        { projection: { revokedAt: 1, expiresAt: 1 } },
      )
      if (!key || key.revokedAt !== null || (key.expiresAt !== null && key.expiresAt <= now)) {
        await this.col.deleteOne({ _id: doc._id })
        return null
      }
    }
    return {
      principal: doc.principal,
      organizationName: doc.organizationName,
      csrf: doc.csrf,
      expiresAt: doc.expiresAt,
    }
  }

  /** Sign-out: the session is gone everywhere at once. */
  async close(id: string | undefined): Promise<void> {
    if (id) await this.col.deleteOne({ _id: hash(id) })
  }

  /** Deletes expired sessions; returns how many. */
  async sweep(now = new Date()): Promise<number> {
    return (await this.col.deleteMany({ expiresAt: { $lte: now } })).deletedCount
  }
}

/** The cookies of a request (no cookie-parser dependency: one header, split once). */
export function cookiesOf(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {}
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=')
    const name = i > 0 ? part.slice(0, i).trim() : ''
    if (name === '') continue
    try {
      out[name] = decodeURIComponent(part.slice(i + 1).trim())
    } catch {
      /* a malformed value: ignored */
    }
  }
  return out
}

/** A Set-Cookie value: HttpOnly, SameSite=Strict, Path=/console, Secure when the request came over TLS. */
export function cookie(name: string, value: string, o: { secure: boolean; maxAgeSeconds: number }): string {
  const parts = [
    `${name}=${encodeURIComponent(value)}`,
    'Path=/console',
    'HttpOnly',
    'SameSite=Strict',
    `Max-Age=${Math.max(0, Math.floor(o.maxAgeSeconds))}`,
  ]
  if (o.secure) parts.push('Secure')
  return parts.join('; ')
}
