/**
 * A streaming RFC 4180 parser over bytes: feed it chunks, get complete rows with the physical line
 * each starts on and the byte offset just past it (the resume point of a crash). Quoted fields may
 * hold delimiters, quotes ("") and line breaks; rows end with CRLF, LF or CR; a UTF-8 BOM at the
 * start of the file is skipped; blank lines are skipped. Working on bytes (the delimiter, quote, CR
 * and LF are ASCII, never part of a UTF-8 multi-byte sequence) keeps offsets exact.
 *
 * A malformed row (text after a closing quote, an unclosed quote at the end of the file, a row
 * longer than `maxRowBytes`) is returned with `error`, so the caller rejects that line and goes on.
 */
const QUOTE = 0x22
const CR = 0x0d
const LF = 0x0a

export interface CsvRow {
  fields: string[]
  /** 1-based physical line the row starts on. */
  line: number
  /** Byte offset just past the row and its line break. */
  end: number
  error?: string
}

export interface CsvParserOptions {
  /** Byte offset of the first chunk in the file. */
  offset?: number
  /** Line number at that offset. */
  line?: number
  delimiter?: string
  maxRowBytes?: number
}

export class CsvParser {
  private carry: Buffer = Buffer.alloc(0)
  private offset: number // file offset of carry[0]
  private line: number
  private readonly delim: number
  private readonly maxRowBytes: number
  private first: boolean

  constructor(opts: CsvParserOptions = {}) {
    this.offset = opts.offset ?? 0
    this.line = opts.line ?? 1
    this.first = this.offset === 0
    const d = opts.delimiter ?? ','
    if (Buffer.byteLength(d) !== 1) throw new Error('the CSV delimiter must be one ASCII character')
    this.delim = d.charCodeAt(0)
    this.maxRowBytes = opts.maxRowBytes ?? 1024 * 1024
  }

  push(chunk: Buffer): CsvRow[] {
    const buf = this.carry.length === 0 ? chunk : Buffer.concat([this.carry, chunk])
    return this.parse(buf, false)
  }

  /** The last row when the file does not end with a line break. */
  end(): CsvRow[] {
    const buf = this.carry
    this.carry = Buffer.alloc(0)
    return this.parse(buf, true)
  }

  private parse(buf: Buffer, final: boolean): CsvRow[] {
    let pos = 0
    if (this.first) {
      if (buf.length < 3 && !final) {
        this.carry = buf
        return []
      }
      if (buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) pos = 3
      this.first = false
    }
    const rows: CsvRow[] = []
    const n = buf.length
    const delim = this.delim
    for (;;) {
      if (pos >= n) break
      const rowStart = pos
      const fields: string[] = []
      let lines = 0
      let error: string | undefined
      let complete = false
      let i = pos
      // one row
      for (;;) {
        if (i >= n) break // incomplete
        if (buf[i] === QUOTE) {
          // quoted field
          let j = i + 1
          let hasEscapes = false
          let closed = false
          while (j < n) {
            const c = buf[j]!
            if (c === QUOTE) {
              if (j + 1 < n && buf[j + 1] === QUOTE) {
                hasEscapes = true
                j += 2
                continue
              }
              if (j + 1 >= n && !final) break // cannot tell "" from a closing quote yet
              closed = true
              break
            }
            if (c === LF) lines++
            j++
          }
          if (!closed) {
            if (final) {
              error = 'unclosed quoted field'
              i = n
              complete = true
            }
            break
          }
          let value = buf.toString('utf8', i + 1, j)
          if (hasEscapes) value = value.replace(/""/g, '"')
          fields.push(value)
          i = j + 1
          if (i >= n) {
            if (final) complete = true
            break
          }
          const c = buf[i]!
          if (c === delim) {
            i++
            continue
          }
          if (c === LF || c === CR) {
            complete = true
            break
          }
          // text after the closing quote: skip to the end of the line
          error = `unexpected text after a closing quote in field ${fields.length}`
          while (i < n && buf[i] !== LF && buf[i] !== CR) i++
          if (i >= n && !final) break
          complete = true
          break
        }
        // unquoted field
        let j = i
        while (j < n) {
          const c = buf[j]!
          if (c === delim || c === LF || c === CR) break
          j++
        }
        if (j >= n && !final) break
        fields.push(buf.toString('utf8', i, j))
        if (j >= n) {
          i = j
          complete = true
          break
        }
        if (buf[j] === delim) {
          i = j + 1
          if (i >= n && final) {
            fields.push('')
            complete = true
            break
          }
          continue
        }
        i = j
        complete = true
        break
      }
      if (!complete) {
        if (n - rowStart > this.maxRowBytes) {
          // give up on this row: skip to the next line break
          let k = rowStart
          while (k < n && buf[k] !== LF) k++
          if (k >= n) {
            this.carry = Buffer.alloc(0)
            this.offset += n
            rows.push({
              fields: [],
              line: this.line,
              end: this.offset,
              error: `row longer than ${this.maxRowBytes} bytes`,
            })
            return rows
          }
          pos = k + 1
          rows.push({
            fields: [],
            line: this.line,
            end: this.offset + pos,
            error: `row longer than ${this.maxRowBytes} bytes`,
          })
          this.line++
          continue
        }
        break
      }
      // line break: CRLF, LF or CR
      if (i < n && buf[i] === CR) {
        if (i + 1 >= n && !final) break // CRLF split across chunks
        i += i + 1 < n && buf[i + 1] === LF ? 2 : 1
        lines++
      } else if (i < n && buf[i] === LF) {
        i++
        lines++
      }
      const line = this.line
      this.line += lines
      pos = i
      const blank = fields.length === 1 && fields[0] === '' && error === undefined
      if (!blank)
        rows.push(error ? { fields, line, end: this.offset + pos, error } : { fields, line, end: this.offset + pos })
    }
    this.carry = pos >= n ? Buffer.alloc(0) : buf.subarray(pos)
    // keep a copy only when the carry pins a large chunk
    if (this.carry.length > 0 && this.carry.length < buf.length / 4) this.carry = Buffer.from(this.carry)
    this.offset += pos
    return rows
  }
}
