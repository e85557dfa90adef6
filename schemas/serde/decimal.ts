/**
 * Avro `decimal` values (bytes: the unscaled value, two's complement, big-endian) to and from exact
 * decimal strings, for money fields such as DealRegistration.amount. No floating point involved.
 */
import { DataError } from '../../common/errors.ts'

export function decimalToBytes(value: string, scale: number): Buffer {
  const m = /^(-)?(\d+)(?:\.(\d+))?$/.exec(value.trim())
  if (!m) throw new DataError(`"${value}" is not a decimal number`, { value })
  const frac = m[3] ?? ''
  if (frac.length > scale) throw new DataError(`"${value}" has more than ${scale} decimal places`, { value, scale })
  let n = BigInt(m[2]! + frac.padEnd(scale, '0'))
  if (m[1]) n = -n
  // Minimal two's complement, big-endian: the fewest bytes k with -2^(8k-1) <= n < 2^(8k-1).
  let k = 1
  while (n < -(1n << BigInt(8 * k - 1)) || n >= 1n << BigInt(8 * k - 1)) k++
  const unsigned = n < 0n ? (1n << BigInt(8 * k)) + n : n
  return Buffer.from(unsigned.toString(16).padStart(2 * k, '0'), 'hex')
}

export function bytesToDecimal(buf: Buffer, scale: number): string {
  if (buf.length === 0) return scale > 0 ? '0.' + '0'.repeat(scale) : '0'
  let n = BigInt('0x' + buf.toString('hex'))
  if (buf[0]! & 0x80) n -= 1n << BigInt(buf.length * 8)
  const negative = n < 0n
  const digits = (negative ? -n : n).toString().padStart(scale + 1, '0')
  const s = scale > 0 ? `${digits.slice(0, -scale)}.${digits.slice(-scale)}` : digits
  return negative ? `-${s}` : s
}
