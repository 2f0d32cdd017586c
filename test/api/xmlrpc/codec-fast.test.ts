import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeCall, decodeCallParsed, decodeFast, type MethodCall } from '../../../src/api/xmlrpc/codec.js';
import { NOT_XML_CHAR } from '../../../src/api/xmlrpc/values.js';
import { KumoError } from '../../../src/core/errors.js';

/** What a decode gives: the call, or the fault's code and message (anything else is a bug and rethrown). */
type Outcome = { call: MethodCall } | { fault: { code: number; message: string } };
function outcome(decode: (xml: string) => MethodCall, xml: string): Outcome {
  try {
    return { call: decode(xml) };
  } catch (e) {
    if (!(e instanceof KumoError)) throw e;
    return { fault: { code: e.code, message: e.message } };
  }
}

/** The body Python's xmlrpc.client writes for ServerProxy(…).getVmStatus("vm-…") (and bench/api sends). */
const pythonBody = (method: string, ...args: string[]) =>
  `<?xml version='1.0'?>\n<methodCall>\n<methodName>${method}</methodName>\n<params>\n${args.map((a) => `<param>\n<value>${a}</value>\n</param>\n`).join('')}</params>\n</methodCall>\n`;

// ------------------------------------------------------------------------------------ generators
/** Pieces that make text interesting for an XML parser: markup, references good and bad, line ends, unicode. */
const PIECES = [
  'x', 'vm-0123456789ab', ' ', '\t', '\n', '\r', '\r\n', '<', '>', '&', ';', '#', '"', "'", '/', ']]>', '<![CDATA[a]]>', '<!-- c -->', '<b>', '</b>',
  '&amp;', '&lt;', '&gt;', '&quot;', '&apos;', '&#60;', '&#x3C;', '&#x1F680;', '&#13;', '&#10;', '&#0;', '&#xD800;', '&#xFFFE;', '&#1114112;',
  '&#0000065;', '&#x000041;', '&bogus;', '&lt', '&amp;lt;', '&#;', '&#x;', 'é', '日本', '🚀', '\u00a0', '\u2028', '\uFEFF', '\uFFFD', '0', '1', '-', '+', '.', 'e',
];
const text = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit: fc.constantFrom(...PIECES), maxLength: 8 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 12 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }) },
);
/** Layout between tags: mostly XML whitespace, sometimes something that is not. */
const ws = fc.oneof(
  { weight: 6, arbitrary: fc.string({ unit: fc.constantFrom(' ', '\t', '\n'), maxLength: 3 }) },
  { weight: 1, arbitrary: fc.string({ unit: fc.constantFrom(' ', '\r', '\r\n', '\n', 'x', '\u00a0', '<!-- c -->'), maxLength: 3 }) },
);
const padded = (core: fc.Arbitrary<string>) =>
  fc.tuple(fc.constantFrom('', '', ' ', '\n', ' \t', '\u00a0', '\r\n'), core, fc.constantFrom('', '', ' ', '\n', '\t ')).map(([a, b, c]) => `${a}${b}${c}`);
const intText = padded(fc.oneof(
  fc.integer({ min: -0x80000000, max: 0x7fffffff }).map(String),
  fc.maxSafeInteger().map(String),
  fc.bigInt({ min: -(2n ** 64n), max: 2n ** 64n }).map(String),
  fc.integer().map((n) => `+${Math.abs(n)}`),
  fc.constantFrom('', '1.0', '0x10', '1e3', 'abc', '--1', '&#x35;', '&#53;0', '07'),
));
const doubleText = padded(fc.oneof(
  fc.double().map(String),
  fc.constantFrom('nan', 'inf', '-0', '1e999', '.5', '5.', '1e', '&#x31;', ''),
));
const base64Text = fc.oneof(
  fc.uint8Array({ maxLength: 80 }).map((b) => Buffer.from(b).toString('base64').replace(/(.{76})/g, '$1\n')),
  fc.constantFrom('', '@@@@', 'aGVs\nbG8=\n', 'aGVsbG8', ' aGVsbG8= '),
);
const TYPES = ['string', 'int', 'i4', 'i8', 'double', 'boolean', 'base64', 'dateTime.iso8601'] as const;
const typed = fc.oneof(
  fc.record({ tag: fc.constantFrom<string>(...TYPES), body: text }),
  fc.record({ tag: fc.constantFrom('int', 'i4', 'i8'), body: intText }),
  fc.record({ tag: fc.constant('double'), body: doubleText }),
  fc.record({ tag: fc.constant('boolean'), body: padded(fc.constantFrom('0', '1', '2', 'true', '', '&#49;')) }),
  fc.record({ tag: fc.constant('base64'), body: base64Text }),
  fc.record({ tag: fc.constantFrom('nil', 'struct', 'array', 'float', 'String'), body: fc.constantFrom('', ' ', 'x') }),
);
const value = fc.oneof(
  { weight: 2, arbitrary: text.map((t) => `<value>${t}</value>`) },
  { weight: 4, arbitrary: fc.tuple(ws, typed, ws).map(([a, { tag, body }, b]) => `<value>${a}<${tag}>${body}</${tag}>${b}</value>`) },
  { weight: 1, arbitrary: fc.constantFrom('<value/>', '<value><string/></value>', '<value><nil/></value>', '<value><int>1</int><int>2</int></value>', '<value><string>a</string>b</value>') },
);
const param = fc.tuple(ws, value, ws).map(([a, v, b]) => `<param>${a}${v}${b}</param>`);
const methodName = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('getVmStatus', 'getVmInfo', 'system.listMethods', 'a:b/c_d', 'm') },
  { weight: 1, arbitrary: fc.string({ unit: fc.constantFrom('a', 'Z', '0', '_', '.', ':', '/', ' ', '-', '&amp;', '&#97;', '<', 'é'), maxLength: 6 }) },
);
const declaration = fc.constantFrom(
  '', '', "<?xml version='1.0'?>", '<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-8"?>', "<?xml version='1.0' encoding='utf-8'?>",
  "<?xml version='1.0' encoding=\"utf-8\"?>", '<?xml version="1.0" ?>', "<?xml version='1.0\"?>", '<?xml version="1.1"?>', ' <?xml version="1.0"?>',
  "<?xml version='1.0' encoding=''?>", '\uFEFF',
);
const paramsBlock = fc.oneof(
  { weight: 8, arbitrary: fc.tuple(ws, fc.array(fc.tuple(param, ws), { maxLength: 4 })).map(([a, ps]) => `<params>${a}${ps.map(([p, w]) => p + w).join('')}</params>`) },
  { weight: 1, arbitrary: fc.constantFrom('', '<params/>', '<params></params>', '<param><value>x</value></param>', '<params><param><value>x</value></param>') },
);
/** Anything: most of these are not of the fast path's shape, or not valid calls at all. */
const noisy = fc.tuple(declaration, ws, methodName, ws, paramsBlock, ws, ws, fc.constantFrom('', '', '\n', ' \n', 'x', '<x/>', '\r\n'))
  .map(([decl, w1, name, w2, params, w3, w4, tail]) => `${decl}${w1}<methodCall>${w2}<methodName>${name}</methodName>${w3}${params}${w4}</methodCall>${tail}`);

/** Mostly of the fast path's shape: clean layout, plain names, text without markup or CR, yet with
 * references (good and bad), `>`, whitespace and unicode, and scalar texts that may still be faults. */
const cleanWs = fc.string({ unit: fc.constantFrom(' ', '\t', '\n'), maxLength: 2 });
const cleanText = fc.string({ unit: fc.constantFrom(...PIECES.filter((p) => !/[<\r]/.test(p))), maxLength: 8 });
const cleanTyped = fc.oneof(
  { weight: 3, arbitrary: fc.record({ tag: fc.constant('string'), body: cleanText }) },
  { weight: 1, arbitrary: fc.record({ tag: fc.constantFrom<string>(...TYPES), body: cleanText }) },
  { weight: 2, arbitrary: fc.record({ tag: fc.constantFrom('int', 'i4', 'i8'), body: intText }) },
  { weight: 1, arbitrary: fc.record({ tag: fc.constant('double'), body: doubleText }) },
  { weight: 1, arbitrary: fc.record({ tag: fc.constant('boolean'), body: padded(fc.constantFrom('0', '1', '2', '&#49;')) }) },
  { weight: 1, arbitrary: fc.record({ tag: fc.constant('base64'), body: base64Text }) },
);
const cleanValue = fc.oneof(
  cleanText.map((t) => `<value>${t}</value>`),
  fc.tuple(cleanWs, cleanTyped, cleanWs).map(([a, { tag, body }, b]) => `<value>${a}<${tag}>${body}</${tag}>${b}</value>`),
);
const plain = fc.tuple(
  fc.constantFrom('', "<?xml version='1.0'?>", '<?xml version="1.0" encoding="UTF-8"?>', "<?xml version='1.0' encoding='iso-8859-1'?>"),
  cleanWs, fc.constantFrom('getVmStatus', 'vm.get_status', 'a:b/c'), cleanWs,
  fc.option(fc.tuple(cleanWs, fc.array(fc.tuple(cleanWs, cleanValue, cleanWs, cleanWs), { maxLength: 4 })), { nil: undefined }),
  cleanWs, cleanWs,
).map(([decl, w1, name, w2, ps, w3, w4]) => `${decl}${w1}<methodCall>${w2}<methodName>${name}</methodName>${w3}`
  + `${ps === undefined ? '' : `<params>${ps[0]}${ps[1].map(([a, v, b, c]) => `<param>${a}${v}${b}</param>${c}`).join('')}</params>`}${w4}</methodCall>${w3}`);

const document = fc.oneof(plain, noisy);

describe('decodeCall fast path', () => {
  it('takes the body Python xmlrpc.client writes for scalar arguments', () => {
    const xml = pythonBody('getVmStatus', '<string>vm-0123456789ab</string>');
    assert.deepEqual(decodeFast(xml), { method: 'getVmStatus', params: ['vm-0123456789ab'] });
    const mixed = pythonBody('m', '<int>-7</int>', '<boolean>1</boolean>', '<string>a &lt;b&gt; &amp; c</string>', '<double>0.25</double>', 'untyped ', '<i4>3</i4>');
    assert.deepEqual(decodeFast(mixed), { method: 'm', params: [-7, true, 'a <b> & c', 0.25, 'untyped ', 3] });
    assert.deepEqual(decodeFast('<methodCall><methodName>getVmList</methodName></methodCall>'), { method: 'getVmList', params: [] });
  });

  it('leaves every other shape, and every fault, to the parser', () => {
    for (const xml of [
      pythonBody('allocateVm', '<struct><member><name>type</name><value>be.small</value></member></struct>'),
      pythonBody('m', '<string><![CDATA[x]]></string>'), pythonBody('m', '<string>a\r\nb</string>'), pythonBody('m', '<nil/>'),
      pythonBody('m', '<int>2147483648</int>'), pythonBody('m', '<string>&bogus;</string>'), pythonBody('m', 'a & b'),
      pythonBody('bad name', '<string>x</string>'), '<methodCall><methodName>m</methodName><params/></methodCall>',
      `${pythonBody('m')}trailing`, ` ${pythonBody('m')}`,
    ]) assert.equal(decodeFast(xml), undefined, xml);
  });

  it('agrees with the full parser on every document: the same call or the same fault', () => {
    let fast = 0, runs = 0;
    fc.assert(fc.property(document, (xml) => {
      runs++;
      const expected = outcome(decodeCallParsed, xml);
      assert.deepStrictEqual(outcome(decodeCall, xml), expected);
      // decodeCall tries the fast path only on what it has not refused outright (its text cannot hold
      // a declaration: no `<`); so does this.
      const viaFast = NOT_XML_CHAR.test(xml) ? undefined : decodeFast(xml);
      if (viaFast !== undefined) {
        fast++;
        assert.deepStrictEqual({ call: viaFast }, expected, `fast path and parser differ on ${JSON.stringify(xml)}`);
      }
    }), { numRuns: 4000 });
    // The generators are meant to hit both paths often; if the fast path stopped taking anything, this test would prove nothing.
    assert.ok(fast > runs / 8, `fast path took only ${fast} of ${runs} documents`);
  });
});
