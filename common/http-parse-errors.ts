/**
 * Requests that Node's HTTP parser refuses (a control character in a header value, a header name with a space, a
 * Content-Length that is no number, headers over Node's size limit) never reach express. Node answered them with a
 * bare `400 Bad Request`: no body, no media type, nothing naming the header at fault, and it reset the connection
 * while the request was still unread, so a client often read a reset instead of the 400 (an API fuzzer's first
 * finding). `answerParseErrors` gives them an answer in the server's own error format instead, naming the header when
 * the parser stopped in one, and closes the connection only once the answer is sent (the parser cannot go on).
 */
import type { Server, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'

export interface ParseRefusal {
  status: number
  title: string
  detail: string
  /** The header the parser stopped in, when it stopped in a header value. */
  header?: string
}

type ParseError = Error & { code?: string; reason?: string; rawPacket?: Buffer; bytesParsed?: number }

/** The longest header name named back to the client (the rest of the line is the client's, not ours to echo). */
const MAX_NAME = 100
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

/** The header line the parser stopped in, when that line's name is a valid token (so it can be named back). */
function headerAt(raw: Buffer | undefined, at: number | undefined): string | undefined {
  if (!raw || at === undefined || at <= 0 || at > raw.length) return undefined
  const start = raw.lastIndexOf(0x0a, at - 1) + 1
  if (start === 0) return undefined // still in the request line
  const colon = raw.indexOf(0x3a, start)
  if (colon < 0 || colon >= at) return undefined
  const name = raw.subarray(start, colon).toString('latin1')
  return TOKEN.test(name) && name.length <= MAX_NAME ? name : undefined
}

export function parseRefusal(err: ParseError): ParseRefusal {
  const reason = err.reason ?? err.message.replace(/^Parse Error: /, '')
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return {
        status: 431,
        title: 'Request Header Fields Too Large',
        detail: 'the request headers exceed the size this server reads',
      }
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return {
        status: 413,
        title: 'Content Too Large',
        detail: 'the chunk extensions exceed the size this server reads',
      }
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { status: 408, title: 'Request Timeout', detail: 'the request was not received in time' }
  }
  const header = err.code === 'HPE_INVALID_HEADER_TOKEN' ? headerAt(err.rawPacket, err.bytesParsed) : undefined
  if (header !== undefined && /value/i.test(reason))
    return {
      status: 400,
      title: 'Bad Request',
      detail: `${header}: holds a character HTTP does not allow in a header value (a control character)`,
      header,
    }
  return {
    status: 400,
    title: 'Bad Request',
    detail: `the request is not valid HTTP/1.1: ${reason.toLowerCase()} (${err.code ?? 'parse error'})`,
  }
}

/**
 * Answers each request the parser refuses with `render`'s body. When the refused request follows one whose answer is
 * still being written (pipelining on a keep-alive connection), the refusal waits for that answer to finish, so that
 * answers keep the order of the requests. A socket that is gone is closed as Node would.
 */
export function answerParseErrors(
  server: Server,
  render: (refusal: ParseRefusal) => { contentType: string; body: string },
): void {
  const answered = new WeakSet<Socket>()
  server.on('clientError', (err: ParseError, socket: Socket) => {
    // the parser stays failed: the rest of what the client sends fails again, and is dropped
    if (answered.has(socket)) return
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy(err)
      return
    }
    answered.add(socket)
    const refusal = parseRefusal(err)
    const { contentType, body } = render(refusal)
    const head = [
      `HTTP/1.1 ${refusal.status} ${refusal.title}`,
      `Content-Type: ${contentType}`,
      `Content-Length: ${Buffer.byteLength(body)}`,
      'Connection: close',
    ]
    const answer = () => {
      if (!socket.writable) return void socket.destroy()
      // end(): the answer, then FIN; what the client still sends is read and dropped until it closes, or for 5 s
      socket.end(`${head.join('\r\n')}\r\n\r\n${body}`)
      socket.resume()
      socket.setTimeout(5000, () => socket.destroy())
    }
    const inFlight = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage
    if (inFlight && !inFlight.writableFinished) inFlight.once('close', answer)
    else answer()
  })
}
