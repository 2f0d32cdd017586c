/**
 * The XML-RPC codec of the HaaS API (shared/haas-api.md): methodCall in, methodResponse out. No HTTP here.
 */
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import {
  CDATA, NOT_XML_CHAR, TEXT, decodeRefs, decodeValue, elementsOf, encodeValue, escapeText, invalid, malformed, scalarValue, tagOf, textOf,
  type ScalarTag, type XNode, type XmlRpcValue,
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
  refuse(xml);
  return decodeFast(xml) ?? decodeParsed(xml);
}

/** decodeCall without the fast path: the full validator and parser for every document (tests compare the two). */
export function decodeCallParsed(xml: string): MethodCall {
  refuse(xml);
  return decodeParsed(xml);
}

/** What is refused before anything else looks at the document. */
function refuse(xml: string): void {
  if (ENTITY_DECL.test(xml)) throw invalid('XML entity declarations are not accepted');
  const bad = NOT_XML_CHAR.exec(xml);
  if (bad) throw malformed(`character U+${bad[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')} is not allowed`);
}

// ------------------------------------------------------------------------------------ fast path
// The shape every scalar-argument call from Python's xmlrpc.client, Ruby or curl has, matched
// exactly: an optional `<?xml version="1.0"( encoding="…")?>`, <methodCall>, a plain <methodName>,
// and <params> whose values are untyped text or one scalar element holding text. Only XML
// whitespace (no CR: XML folds line ends, the parser does that) sits between the tags, and text
// holds neither `<` (so no markup, CDATA or comment) nor CR. Text is then resolved with the same
// decodeRefs and turned into a value with the same scalarValue as the tree walk. Whatever does not
// match, and whatever would be a fault, goes to the full validator and parser: the fast path
// never answers a fault itself, so every fault stays what the parser path gives.
const WS = '[ \\t\\n]*';
const FAST_HEAD = new RegExp(
  `(?:<\\?xml version=(["'])1\\.0\\1(?: encoding=(["'])[A-Za-z][A-Za-z0-9._-]*\\2)?\\?>)?${WS}`
  + `<methodCall>${WS}<methodName>([A-Za-z0-9_.:/]+)</methodName>${WS}(?:(</methodCall>)|<params>${WS})`, 'y');
const FAST_PARAM = new RegExp(
  `<param>${WS}<value>(?:([^<\\r]*)|${WS}<(string|int|i4|i8|double|boolean|base64|dateTime\\.iso8601)>([^<\\r]*)</\\2>${WS})</value>${WS}</param>${WS}`, 'y');
const FAST_PARAMS_END = new RegExp(`</params>${WS}</methodCall>`, 'y');
const FAST_TAIL = /[ \t\n]*$/y;

/** The fast path alone: the call, or undefined when the document is not of the plain shape or is not
 * a valid call (then the parser decides). Assumes `refuse` has passed. Exported for tests. */
export function decodeFast(xml: string): MethodCall | undefined {
  FAST_HEAD.lastIndex = 0;
  const head = FAST_HEAD.exec(xml);
  if (!head) return undefined;
  const method = head[3];
  const params: XmlRpcValue[] = [];
  let at = FAST_HEAD.lastIndex;
  if (head[4] === undefined) {
    for (;;) {
      FAST_PARAM.lastIndex = at;
      const p = FAST_PARAM.exec(xml);
      if (!p) break;
      at = FAST_PARAM.lastIndex;
      try {
        params.push(p[2] === undefined ? decodeRefs(p[1]) : scalarValue(p[2] as ScalarTag, decodeRefs(p[3])));
      } catch {
        return undefined;
      }
    }
    FAST_PARAMS_END.lastIndex = at;
    if (!FAST_PARAMS_END.test(xml)) return undefined;
    at = FAST_PARAMS_END.lastIndex;
  }
  FAST_TAIL.lastIndex = at;
  return FAST_TAIL.test(xml) ? { method, params } : undefined;
}

// ------------------------------------------------------------------------------------ full parser
function decodeParsed(xml: string): MethodCall {
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
