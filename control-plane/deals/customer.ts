/**
 * Who the end customer of a deal is, as the conflict check compares them (docs/deals.md): the
 * registrable domain of its web domain (subdomains included: shop.example.co.uk is example.co.uk),
 * or without a domain its normalized name and country.
 *
 * The registrable domain follows the Public Suffix List's rule (one label below the public suffix)
 * with a small built-in list of multi-label suffixes (co.uk, com.au, ...), not the whole list: the
 * common second-level registries, enough to tell example.co.uk from other.co.uk. A suffix missing
 * here errs towards more conflicts (two customers under one unknown suffix look like one), which a
 * publisher resolves in review; never towards fewer.
 */

/** Second-level public suffixes of common country registries (publicsuffix.org, ICANN section). */
const MULTI_LABEL_SUFFIXES = new Set(
  [
    'co.uk org.uk me.uk ltd.uk plc.uk ac.uk gov.uk net.uk sch.uk nhs.uk',
    'com.au net.au org.au edu.au gov.au asn.au id.au',
    'co.nz org.nz net.nz govt.nz ac.nz',
    'co.jp ne.jp or.jp ac.jp go.jp',
    'com.br net.br org.br gov.br',
    'com.cn net.cn org.cn gov.cn',
    'co.in net.in org.in firm.in gen.in ind.in',
    'co.za org.za net.za gov.za',
    'com.mx org.mx gob.mx',
    'com.ar com.tr com.sg com.hk com.tw com.my com.ph com.pk com.sa com.eg com.ng com.co com.pe com.ua',
    'co.kr or.kr co.il org.il co.id or.id co.th ac.th',
    'gv.at co.at or.at',
  ]
    .join(' ')
    .split(' '),
)

/** `https://Shop.Example.co.uk/path` → `shop.example.co.uk`; undefined for what is not a host name. */
export function hostOf(domain: string): string | undefined {
  let d = domain.trim().toLowerCase()
  d = d.replace(/^[a-z][a-z0-9+.-]*:\/\//, '')
  d = d.replace(/^[^@/]*@/, '')
  d = d.split(/[/?#:]/)[0]!.replace(/\.$/, '')
  if (!/^[a-z0-9-]+(\.[a-z0-9-]+)+$/.test(d)) return undefined
  return d
}

/** The registrable domain ("eTLD+1") of a host name: example.com, example.co.uk. */
export function registrableDomain(domain: string): string | undefined {
  const host = hostOf(domain)
  if (host === undefined) return undefined
  const labels = host.split('.')
  if (labels.length < 2) return undefined
  const lastTwo = labels.slice(-2).join('.')
  const take = MULTI_LABEL_SUFFIXES.has(lastTwo) ? 3 : 2
  if (labels.length < take) return undefined // the suffix itself (co.uk) names no customer
  return labels.slice(-take).join('.')
}

/** Words of a company name that say its legal form, not who it is. */
const LEGAL_FORMS = new Set(
  [
    'inc incorporated corp corporation co company ltd limited llc llp plc',
    'gmbh ag kg ohg sa sas sarl srl spa bv nv ab as oy pty pte kk',
  ]
    .join(' ')
    .split(' '),
)

/** `Contoso GmbH & Co. KG` and `contoso` compare equal: case, accents, punctuation and legal forms dropped. */
export function normalizedName(name: string): string {
  const words = name
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/\./g, '') // S.A. is SA
    .replace(/&/g, ' ')
    .replace(/[^a-z0-9]+/g, ' ')
    .trim()
    .split(' ')
    .filter((w) => w !== '')
  const kept = words.filter((w) => !LEGAL_FORMS.has(w))
  return (kept.length > 0 ? kept : words).join(' ')
}

export interface EndCustomerLike {
  name: string
  domain?: string | null | undefined
  country: string
}

/** The key two registrations' end customers are compared by: `d:<registrable domain>` or `n:<name>|<country>`. */
export function customerKey(c: EndCustomerLike): string {
  const domain = c.domain ? registrableDomain(c.domain) : undefined
  if (domain !== undefined) return `d:${domain}`
  return `n:${normalizedName(c.name)}|${c.country.trim().toUpperCase()}`
}
