/**
 * XML-RPC <value> encoding and decoding (xmlrpc.com spec plus the common <i8> and <nil/> extensions).
 * Decoding walks fast-xml-parser's preserveOrder tree; encoding is plain string building.
 */
import { Fault, KumoError } from '../../core/errors.js';

export type XmlRpcValue = string | number | boolean | null | Uint8Array | XmlRpcValue[] | { [member: string]: XmlRpcValue };

/** One node of fast-xml-parser's preserveOrder output: `{tag: children}`, `{'#text': s}` or `{'#cdata': [{'#text': s}]}`. */
export type XNode = Record<string, unknown>;
export const TEXT = '#text';
export const CDATA = '#cdata';

export const invalid = (msg: string) => new KumoError(Fault.INVALID_REQUEST, msg);
export const malformed = (reason: string) => new KumoError(Fault.PARSE_ERROR, `malformed XML: ${reason}`);

/** Anything outside XML 1.0's Char production (C0 controls, U+FFFE/U+FFFF, lone surrogates). */
export const NOT_XML_CHAR = /[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;
const BLANK = /^[ \t\n\r]*$/;
const INT = /^[+-]?[0-9]+$/;
// JavaScript's own number syntax minus hex, Infinity and NaN; String(double) always matches it.
const DOUBLE = /^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const XML_WS = /[ \t\n\r]+/g;
const MAX_ENCODE_DEPTH = 64;

export const tagOf = (n: XNode): string => {
  for (const k in n) return k;
  return '';
};

const quote = (s: string) => JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s);

const isXmlChar = (cp: number) =>
  cp === 0x9 || cp === 0xa || cp === 0xd || (cp >= 0x20 && cp <= 0xd7ff) ||
  (cp >= 0xe000 && cp <= 0xfffd) || (cp >= 0x10000 && cp <= 0x10ffff);

const NAMED: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

/** The parser runs with processEntities off, so references are resolved here: the five predefined ones and character references, nothing else. */
export function decodeRefs(raw: string): string {
  if (raw.indexOf('&') === -1) return raw;
  return raw.replace(/&([^&;]*)(;?)/g, (_m, body: string, semi: string) => {
    if (semi === ';') {
      if (Object.hasOwn(NAMED, body)) return NAMED[body];
      const num = /^#(?:x([0-9A-Fa-f]{1,6})|([0-9]{1,7}))$/.exec(body);
      if (num) {
        const cp = num[1] !== undefined ? parseInt(num[1], 16) : parseInt(num[2], 10);
        if (isXmlChar(cp)) return String.fromCodePoint(cp);
      }
    }
    throw malformed(`invalid reference ${quote(`&${body}${semi}`)}`);
  });
}

/** Child elements of an XML-RPC container; only layout whitespace may sit between them. */
export function elementsOf(kids: XNode[], where: string): XNode[] {
  const out: XNode[] = [];
  for (const k of kids) {
    const t = tagOf(k);
    if (t === TEXT) {
      if (!BLANK.test(k[TEXT] as string)) throw invalid(`unexpected text in <${where}>`);
    } else if (t === CDATA) {
      throw invalid(`unexpected CDATA in <${where}>`);
    } else out.push(k);
  }
  return out;
}

/** Text content of a leaf element, references resolved, CDATA taken verbatim. */
export function textOf(kids: XNode[], where: string): string {
  let s = '';
  for (const k of kids) {
    const t = tagOf(k);
    if (t === TEXT) s += decodeRefs(k[TEXT] as string);
    else if (t === CDATA) s += ((k[CDATA] as XNode[])[0]?.[TEXT] as string | undefined) ?? '';
    else throw invalid(`<${where}> must hold text only, found <${t}>`);
  }
  return s;
}

function parseInteger(text: string, tag: string, min: number, max: number): number {
  const s = text.trim();
  const n = INT.test(s) ? Number(s) : NaN;
  if (Number.isNaN(n)) throw invalid(`bad <${tag}> value ${quote(text)}`);
  if (n < min || n > max) throw invalid(`<${tag}> value ${quote(s)} is out of range`);
  return n;
}

/** The value types whose element holds text only. */
export const SCALAR_TAGS = ['string', 'int', 'i4', 'i8', 'double', 'boolean', 'base64', 'dateTime.iso8601'] as const;
export type ScalarTag = (typeof SCALAR_TAGS)[number];
const SCALAR_SET: ReadonlySet<string> = new Set(SCALAR_TAGS);
export const isScalarTag = (tag: string): tag is ScalarTag => SCALAR_SET.has(tag);

/** The value of a scalar element from its text content (references already resolved). Both the
 * tree walk below and the codec's fast path go through here, so they agree on every value and fault. */
export function scalarValue(tag: ScalarTag, text: string): XmlRpcValue {
  switch (tag) {
    case 'string':
      return text;
    case 'int':
    case 'i4':
      return parseInteger(text, tag, -0x80000000, 0x7fffffff);
    case 'i8':
      return parseInteger(text, tag, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
    case 'double': {
      const s = text.trim();
      const n = DOUBLE.test(s) ? Number(s) : NaN;
      if (!Number.isFinite(n)) throw invalid(`bad <double> value ${quote(s)}`);
      return n;
    }
    case 'boolean': {
      const s = text.trim();
      if (s === '1') return true;
      if (s === '0') return false;
      throw invalid(`bad <boolean> value ${quote(s)}: must be 0 or 1`);
    }
    case 'base64': {
      // Python's encodebytes wraps lines every 76 characters.
      const s = text.replace(XML_WS, '');
      if (!BASE64.test(s)) throw invalid('bad <base64> value');
      const b = Buffer.from(s, 'base64');
      return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    }
    case 'dateTime.iso8601':
      return text.trim();
  }
}

/** Decodes the children of one <value> element. */
export function decodeValue(kids: XNode[]): XmlRpcValue {
  let typed: XNode | undefined;
  let text = '';
  for (const k of kids) {
    const t = tagOf(k);
    if (t === TEXT) text += decodeRefs(k[TEXT] as string);
    else if (t === CDATA) text += ((k[CDATA] as XNode[])[0]?.[TEXT] as string | undefined) ?? '';
    else if (typed) throw invalid('<value> holds more than one element');
    else typed = k;
  }
  // An untyped <value> is a string, and its whitespace is data.
  if (!typed) return text;
  const tag = tagOf(typed);
  if (!BLANK.test(text)) throw invalid(`<value> mixes text with <${tag}>`);
  const inner = typed[tag] as XNode[];
  if (isScalarTag(tag)) return scalarValue(tag, textOf(inner, tag));
  switch (tag) {
    case 'nil':
      if (inner.some((k) => tagOf(k) !== TEXT || !BLANK.test(k[TEXT] as string))) throw invalid('<nil/> must be empty');
      return null;
    case 'struct':
      return decodeStruct(inner);
    case 'array':
      return decodeArray(inner);
    default:
      throw invalid(`unknown value type <${tag}>`);
  }
}

function decodeStruct(kids: XNode[]): { [member: string]: XmlRpcValue } {
  const out: { [member: string]: XmlRpcValue } = {};
  for (const m of elementsOf(kids, 'struct')) {
    if (tagOf(m) !== 'member') throw invalid(`<struct> may hold only <member>, found <${tagOf(m)}>`);
    let name: string | undefined;
    let value: XNode[] | undefined;
    for (const part of elementsOf(m.member as XNode[], 'member')) {
      const t = tagOf(part);
      if (t === 'name' && name === undefined) name = textOf(part.name as XNode[], 'name');
      else if (t === 'value' && value === undefined) value = part.value as XNode[];
      else throw invalid(`unexpected <${t}> in struct <member>`);
    }
    if (name === undefined) throw invalid('struct <member> without <name>');
    if (value === undefined) throw invalid(`struct member ${quote(name)} without <value>`);
    if (Object.hasOwn(out, name)) throw invalid(`duplicate struct member ${quote(name)}`);
    const v = decodeValue(value);
    // Plain assignment of "__proto__" would call the prototype setter; define it as an own property instead.
    if (name === '__proto__') Object.defineProperty(out, name, { value: v, enumerable: true, writable: true, configurable: true });
    else out[name] = v;
  }
  return out;
}

function decodeArray(kids: XNode[]): XmlRpcValue[] {
  const parts = elementsOf(kids, 'array');
  if (parts.length !== 1 || tagOf(parts[0]) !== 'data') throw invalid('<array> must hold exactly one <data>');
  const out: XmlRpcValue[] = [];
  for (const v of elementsOf(parts[0].data as XNode[], 'data')) {
    if (tagOf(v) !== 'value') throw invalid(`<data> may hold only <value>, found <${tagOf(v)}>`);
    out.push(decodeValue(v.value as XNode[]));
  }
  return out;
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '\r': '&#13;' };

/**
 * Escapes text for element content. CR is escaped because a receiving parser would fold a literal CR
 * into LF. Characters XML 1.0 cannot carry at all make this throw: the service never produces them,
 * and silently altering data would be worse than a loud internal error.
 */
export function escapeText(s: string): string {
  if (NOT_XML_CHAR.test(s)) throw new Error('string holds a character XML 1.0 cannot represent');
  return /[&<>\r]/.test(s) ? s.replace(/[&<>\r]/g, (c) => ESCAPES[c]) : s;
}

/** `<value>…</value>` for one value. */
export function encodeValue(v: XmlRpcValue, depth = 0): string {
  if (depth > MAX_ENCODE_DEPTH) throw new Error('value nested too deeply (cyclic?)');
  switch (typeof v) {
    case 'string':
      return `<value><string>${escapeText(v)}</string></value>`;
    case 'number':
      if (Number.isInteger(v)) {
        if (v >= -0x80000000 && v <= 0x7fffffff) return `<value><int>${v}</int></value>`;
        if (Number.isSafeInteger(v)) return `<value><i8>${v}</i8></value>`;
      } else if (!Number.isFinite(v)) {
        throw new Error(`cannot encode ${v} in XML-RPC`);
      }
      return `<value><double>${v}</double></value>`;
    case 'boolean':
      return v ? '<value><boolean>1</boolean></value>' : '<value><boolean>0</boolean></value>';
    case 'object': {
      if (v === null) return '<value><nil/></value>';
      if (v instanceof Uint8Array) {
        return `<value><base64>${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64')}</base64></value>`;
      }
      if (Array.isArray(v)) {
        let s = '<value><array><data>';
        for (const item of v) s += encodeValue(item, depth + 1);
        return `${s}</data></array></value>`;
      }
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) {
        throw new Error(`cannot encode ${proto?.constructor?.name ?? 'object'} in XML-RPC`);
      }
      let s = '<value><struct>';
      for (const k of Object.keys(v)) {
        const m = v[k];
        // Like JSON: an undefined member is an absent member, which lets callers build optional fields.
        if (m !== undefined) s += `<member><name>${escapeText(k)}</name>${encodeValue(m, depth + 1)}</member>`;
      }
      return `${s}</struct></value>`;
    }
    default:
      throw new Error(`cannot encode ${typeof v} in XML-RPC`);
  }
}
