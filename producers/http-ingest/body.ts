/**
 * Reads and parses the JSON body of an ingest request: the hot path of every publisher call, so it
 * does only what the ingest needs (express.json spends more on a small request than the rest of the
 * ingest): a declared Content-Length above the limit is refused before reading, the size is checked
 * as the bytes arrive, gzip/deflate/br bodies are inflated (the limit applies to the inflated size),
 * utf-8 only (JSON's encoding, RFC 8259 section 8.1).
 */
import type { IncomingMessage } from 'node:http'
import type { Readable } from 'node:stream'
import zlib from 'node:zlib'

export interface BodyError {
  status: number
  /** 'entity.too.large' | 'entity.parse.failed' | 'encoding.unsupported' | 'charset.unsupported' | 'request.aborted' */
  type: string
  message: string
}

export type BodyResult = { ok: true; value: unknown } | { ok: false; error: BodyError }

const CHARSET = /;\s*charset\s*=\s*"?([^";\s]+)"?/i

export function readJsonBody(req: IncomingMessage, limit: number): Promise<BodyResult> {
  const charset = CHARSET.exec(req.headers['content-type'] ?? '')?.[1]?.toLowerCase()
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
    return drained(req, {
      status: 415,
      type: 'charset.unsupported',
      message: `unsupported charset "${charset.toUpperCase()}"`,
    })
  }
  const declared = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length'])
  const encoding = (req.headers['content-encoding'] ?? 'identity').toLowerCase().trim()
  if (encoding === 'identity' && declared !== undefined && declared > limit) {
    return drained(req, { status: 413, type: 'entity.too.large', message: 'request entity too large' })
  }
  let stream: Readable = req
  if (encoding === 'gzip' || encoding === 'x-gzip') stream = req.pipe(zlib.createGunzip())
  else if (encoding === 'deflate') stream = req.pipe(zlib.createInflate())
  else if (encoding === 'br') stream = req.pipe(zlib.createBrotliDecompress())
  else if (encoding !== 'identity')
    return drained(req, {
      status: 415,
      type: 'encoding.unsupported',
      message: `unsupported content encoding "${encoding}"`,
    })

  return new Promise<BodyResult>((resolve) => {
    const chunks: Buffer[] = []
    let size = 0
    let done = false
    const finish = (r: BodyResult): void => {
      if (done) return
      done = true
      stream.off('data', onData)
      if (!r.ok) {
        stream.resume()
        if (stream !== req) req.resume()
      }
      resolve(r)
    }
    const onData = (c: Buffer): void => {
      size += c.length
      if (size > limit)
        return finish({
          ok: false,
          error: { status: 413, type: 'entity.too.large', message: 'request entity too large' },
        })
      chunks.push(c)
    }
    stream.on('data', onData)
    stream.once('error', (err: Error) =>
      finish({
        ok: false,
        error: { status: 400, type: 'entity.parse.failed', message: `the body could not be decoded: ${err.message}` },
      }),
    )
    req.once('aborted', () =>
      finish({ ok: false, error: { status: 400, type: 'request.aborted', message: 'request aborted' } }),
    )
    stream.once('end', () => {
      if (done) return
      const text = (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)).toString('utf8')
      try {
        finish({ ok: true, value: JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text) })
      } catch (err) {
        finish({ ok: false, error: { status: 400, type: 'entity.parse.failed', message: (err as Error).message } })
      }
    })
  })
}

/** Answers the error after discarding the body (the connection stays usable). */
function drained(req: IncomingMessage, error: BodyError): Promise<BodyResult> {
  req.resume()
  return Promise.resolve({ ok: false, error })
}
