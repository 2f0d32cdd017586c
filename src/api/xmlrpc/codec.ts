/**
 * The XML-RPC codec of the HaaS API (shared/haas-api.md): methodCall in, methodResponse out. No HTTP here.
 */
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import {
  CDATA, NOT_XML_CHAR, TEXT, decodeValue, elementsOf, encodeValue, escapeText, invalid, malformed, tagOf, textOf,
  type XNode, type XmlRpcValue,
} from './values.js';

export type { XmlRpcValue } from './values.js';

export interface MethodCall {
  method: string;
  params: XmlRpcValue[];
}

// Caught before parsing: a DOCTYPE is the only way to declare entities, so refusing it rules out
// entity expansion (billion laughs, external entities) whatever the parser would have done.
const ENTITY_DECL = /<!(?:DOCTYPE|ENTITY)/i;
const METHOD_NAME = /^[A-Za-z0-9_.:/]+$/;
const NOT_XML_CHARS = new RegExp(NOT_XML_CHAR.source, 'gu');

const parser = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: true,
  ignoreDeclaration: true,
  ignorePiTags: true,
  trimValues: false,
  parseTagValue: false,
  processEntities: false,
  cdataPropName: CDATA,
  textNodeName: TEXT,
});

/** Parses a methodCall document. Throws KumoError PARSE_ERROR when it is not well-formed, INVALID_REQUEST when it is not a valid call. */
export function decodeCall(xml: string): MethodCall {
  if (ENTITY_DECL.test(xml)) throw invalid('XML entity declarations are not accepted');
  const bad = NOT_XML_CHAR.exec(xml);
  if (bad) throw malformed(`character U+${bad[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')} is not allowed`);
  // fast-xml-parser's parser is lenient (it accepts unclosed and mismatched tags); its validator is not.
  const check = XMLValidator.validate(xml);
  if (check !== true) {
    const { msg, line, col } = check.err;
    throw malformed(`${msg} (line ${line}${col === undefined ? '' : `, column ${col}`})`);
  }

  let doc: XNode[];
  try {
    doc = parser.parse(xml) as XNode[];
  } catch (e) {
    // Only well-formed input gets here, so what the parser still refuses (nesting beyond its limit of
    // 100 elements, tags named __proto__) is a request we do not accept rather than a syntax error.
    throw invalid(`unacceptable XML: ${(e as Error).message}`);
  }

  const roots = elementsOf(doc, 'document');
  if (roots.length !== 1 || tagOf(roots[0]) !== 'methodCall') {
    throw invalid(`expected a <methodCall> document, found <${roots.map(tagOf).join('>, <')}>`);
  }
  let method: string | undefined;
  let params: XmlRpcValue[] | undefined;
  for (const el of elementsOf(roots[0].methodCall as XNode[], 'methodCall')) {
    const t = tagOf(el);
    if (t === 'methodName' && method === undefined) method = textOf(el.methodName as XNode[], t);
    else if (t === 'params' && params === undefined) params = decodeParams(el.params as XNode[]);
    else throw invalid(`unexpected <${t}> in <methodCall>`);
  }
  if (method === undefined) throw invalid('<methodCall> has no <methodName>');
  if (!METHOD_NAME.test(method)) throw invalid(`invalid method name ${JSON.stringify(method.slice(0, 60))}`);
  return { method, params: params ?? [] };
}

function decodeParams(kids: XNode[]): XmlRpcValue[] {
  const out: XmlRpcValue[] = [];
  for (const p of elementsOf(kids, 'params')) {
    if (tagOf(p) !== 'param') throw invalid(`<params> may hold only <param>, found <${tagOf(p)}>`);
    const vs = elementsOf(p.param as XNode[], 'param');
    if (vs.length !== 1 || tagOf(vs[0]) !== 'value') throw invalid('<param> must hold exactly one <value>');
    out.push(decodeValue(vs[0].value as XNode[]));
  }
  return out;
}

const HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n';

/**
 * A successful methodResponse. Throws a plain Error (a bug, not a client fault) for what XML-RPC cannot
 * carry: strings with characters outside XML 1.0, NaN/Infinity, non-plain objects, undefined outside structs.
 */
export function encodeResponse(value: XmlRpcValue): string {
  return `${HEAD}<methodResponse><params><param>${encodeValue(value)}</param></params></methodResponse>\n`;
}

/** A fault methodResponse. Never throws on the message: characters XML cannot carry become U+FFFD. */
export function encodeFault(code: number, message: string): string {
  if (!Number.isInteger(code) || code < -0x80000000 || code > 0x7fffffff) throw new Error(`fault code ${code} is not an int`);
  const text = escapeText(message.replace(NOT_XML_CHARS, '\uFFFD'));
  return `${HEAD}<methodResponse><fault><value><struct>`
    + `<member><name>faultCode</name><value><int>${code}</int></value></member>`
    + `<member><name>faultString</name><value><string>${text}</string></value></member>`
    + '</struct></value></fault></methodResponse>\n';
}
