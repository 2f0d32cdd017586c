import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fc from 'fast-check';
import { decodeCall, encodeFault, encodeResponse, type XmlRpcValue } from '../../../src/api/xmlrpc/codec.js';
import { Fault, KumoError } from '../../../src/core/errors.js';

const call = (...values: string[]) =>
  `<?xml version="1.0"?><methodCall><methodName>m</methodName><params>${values.map((v) => `<param>${v}</param>`).join('')}</params></methodCall>`;
const one = (value: string) => decodeCall(call(value)).params[0];

/** Turns an encoded response back into a call, so decodeCall can read what encodeResponse wrote. */
function callWrapping(response: string): string {
  const m = /<methodResponse><params><param>([\s\S]*)<\/param><\/params><\/methodResponse>/.exec(response);
  assert.ok(m, `not a methodResponse: ${response}`);
  return call(m[1]);
}

const rejects = (xml: string, code: number, message?: RegExp) =>
  assert.throws(() => decodeCall(xml), (e: unknown) => {
    assert.ok(e instanceof KumoError, `expected KumoError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (message) assert.match(e.message, message);
    return true;
  });

const PY_LOADS = `
import sys, json, base64, xmlrpc.client
def conv(v):
    if isinstance(v, bytes): return {"$base64": base64.b64encode(v).decode()}
    if isinstance(v, list): return [conv(x) for x in v]
    if isinstance(v, dict): return {k: conv(x) for k, x in v.items()}
    return v
try:
    params, method = xmlrpc.client.loads(sys.stdin.read(), use_builtin_types=True)
    print(json.dumps({"params": conv(list(params))}))
except xmlrpc.client.Fault as f:
    print(json.dumps({"fault": {"faultCode": f.faultCode, "faultString": f.faultString}}))
`;

function python(script: string, input = ''): string {
  const r = spawnSync('python3', ['-c', script], { input, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

describe('decodeCall', () => {
  it('reads a call exactly as Python xmlrpc.client writes it', () => {
    const xml = "<?xml version='1.0'?>\n<methodCall>\n<methodName>allocateVm</methodName>\n<params>\n<param>\n<value><struct>\n<member>\n<name>type</name>\n<value><string>be.small</string></value>\n</member>\n</struct></value>\n</param>\n</params>\n</methodCall>\n";
    assert.deepEqual(decodeCall(xml), { method: 'allocateVm', params: [{ type: 'be.small' }] });
  });

  it('reads the calls Python dumps for every type', () => {
    const xml = python(`
import sys, xmlrpc.client as x
sys.stdout.write(x.dumps(({"type": "be.small", "n": 3}, [1, 2.5, True, False, None], "  a <&> \\u00fcn\\u65e5\\U0001F680\\n\\t", x.Binary(bytes(range(256))),
  x.DateTime("20240101T10:00:00"), -2147483648, 2147483647, {}, [], ""), "vm.get_status", allow_none=True))`);
    assert.deepEqual(decodeCall(xml), {
      method: 'vm.get_status',
      params: [{ type: 'be.small', n: 3 }, [1, 2.5, true, false, null], '  a <&> ün日🚀\n\t', Uint8Array.from({ length: 256 }, (_, i) => i),
        '20240101T10:00:00', -2147483648, 2147483647, {}, [], ''],
    });
  });

  it('decodes every value type', () => {
    assert.equal(one('<value><int>-42</int></value>'), -42);
    assert.equal(one('<value><i4> +7 </i4></value>'), 7);
    assert.equal(one('<value><i8>-9007199254740991</i8></value>'), -9007199254740991);
    assert.equal(one('<value><double>-1.25e-3</double></value>'), -0.00125);
    assert.equal(one('<value><double>3</double></value>'), 3);
    assert.equal(one('<value><boolean>1</boolean></value>'), true);
    assert.equal(one('<value><boolean>0</boolean></value>'), false);
    assert.equal(one('<value><string>s</string></value>'), 's');
    assert.equal(one('<value>untyped</value>'), 'untyped');
    for (const empty of ['<value></value>', '<value/>', '<value><string/></value>', '<value><string></string></value>']) {
      assert.equal(one(empty), '', empty);
    }
    assert.deepEqual(one('<value><base64>aGVs\nbG8=\n</base64></value>'), new TextEncoder().encode('hello'));
    assert.deepEqual(one('<value><base64></base64></value>'), new Uint8Array());
    assert.equal(one('<value><dateTime.iso8601>20240101T10:00:00</dateTime.iso8601></value>'), '20240101T10:00:00');
    assert.equal(one('<value><nil/></value>'), null);
    assert.deepEqual(one('<value><struct><member><value><int>1</int></value><name>b</name></member><member><name>a</name><value>x</value></member></struct></value>'), { b: 1, a: 'x' });
    assert.deepEqual(one('<value><struct/></value>'), {});
    assert.deepEqual(one('<value><array><data><value>b</value><value><int>2</int></value><value>a</value></data></array></value>'), ['b', 2, 'a']);
    assert.deepEqual(one('<value><array><data/></array></value>'), []);
  });

  it('treats absent or empty <params> as no parameters', () => {
    for (const p of ['', '<params/>', '<params></params>', '<params>\n</params>']) {
      assert.deepEqual(decodeCall(`<methodCall><methodName>getVmList</methodName>${p}</methodCall>`), { method: 'getVmList', params: [] });
    }
  });

  it('keeps string content exactly and resolves only the predefined and character references', () => {
    assert.equal(one('<value><string>  lead and trail  </string></value>'), '  lead and trail  ');
    assert.equal(one('<value>\n two\nlines \n</value>'), '\n two\nlines \n');
    assert.equal(one('<value>   </value>'), '   ');
    assert.equal(one('<value><string>&lt;&amp;&gt; &quot;&apos; &#60;&#x3C;&#x1F680;</string></value>'), `<&> "' <<🚀`);
    assert.equal(one('<value><string>&amp;lt;</string></value>'), '&lt;');
    assert.equal(one('<value><string>日本語 ünïcödé 🚀 > ]]</string></value>'), '日本語 ünïcödé 🚀 > ]]');
    assert.equal(one('<value><string><![CDATA[<&lt;>]]></string></value>'), '<&lt;>');
    // XML folds literal line ends to LF; only a character reference carries a CR.
    assert.equal(one('<value><string>a\r\nb\rc&#13;</string></value>'), 'a\nb\nc\r');
    assert.equal(one('<value><string>a<!-- note -->b</string></value>'), 'ab');
  });

  it('refuses entity declarations before parsing', () => {
    const lol = '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">' +
      Array.from({ length: 9 }, (_, i) => `<!ENTITY lol${i + 1} "${`&lol${i || ''};`.repeat(10)}">`).join('') +
      ']><methodCall><methodName>m</methodName><params><param><value>&lol9;</value></param></params></methodCall>';
    rejects(lol, Fault.INVALID_REQUEST, /^XML entity declarations are not accepted$/);
    rejects('<!DOCTYPE methodCall><methodCall><methodName>m</methodName></methodCall>', Fault.INVALID_REQUEST, /entity declarations/);
    rejects('<methodCall><methodName>m</methodName><!ENTITY x "y"></methodCall>', Fault.INVALID_REQUEST, /entity declarations/);
    rejects('<!DOCTYPE x SYSTEM "file:///etc/passwd"><x>&xxe;</x>', Fault.INVALID_REQUEST, /entity declarations/);
  });

  it('answers malformed XML with PARSE_ERROR', () => {
    for (const xml of [
      '', 'not xml', '<methodCall><methodName>m</methodName>',
      '<methodCall><methodName>m</methodName><params><param><value><int>1</value></param></params></methodCall>',
      '<methodCall><methodName>m</methodName></methodCall>trailing',
      call('<value>a & b</value>'), call('<value>&foo;</value>'), call('<value>&lt</value>'),
      call('<value>&#0;</value>'), call('<value>&#xFFFE;</value>'), call('<value>\u0001</value>'),
    ]) rejects(xml, Fault.PARSE_ERROR, /^malformed XML: /);
  });

  it('answers well-formed XML that is not a valid call with INVALID_REQUEST naming the problem', () => {
    const cases: [string, RegExp][] = [
      ['<methodResponse/>', /<methodCall>/],
      ['<methodCall><params/></methodCall>', /no <methodName>/],
      ['<methodCall><methodName>bad name!</methodName></methodCall>', /invalid method name/],
      ['<methodCall><methodName></methodName></methodCall>', /invalid method name/],
      ['<methodCall><methodName>m</methodName><extra/></methodCall>', /unexpected <extra>/],
      ['<methodCall><methodName>m</methodName><params><value>1</value></params></methodCall>', /<params> may hold only <param>/],
      [call('<value><int>abc</int></value>'), /bad <int> value "abc"/],
      [call('<value><int>1.0</int></value>'), /bad <int>/],
      [call('<value><int></int></value>'), /bad <int>/],
      [call('<value><int>2147483648</int></value>'), /<int> value "2147483648" is out of range/],
      [call('<value><i4>-2147483649</i4></value>'), /out of range/],
      [call('<value><i8>9007199254740992</i8></value>'), /<i8> value .* out of range/],
      [call('<value><double>nan</double></value>'), /bad <double>/],
      [call('<value><double>1e999</double></value>'), /bad <double>/],
      [call('<value><boolean>true</boolean></value>'), /bad <boolean> value "true": must be 0 or 1/],
      [call('<value><base64>@@@@</base64></value>'), /bad <base64>/],
      [call('<value><float>1</float></value>'), /unknown value type <float>/],
      [call('<value><nil>x</nil></value>'), /<nil\/> must be empty/],
      [call('<value><struct><member><value>1</value></member></struct></value>'), /struct <member> without <name>/],
      [call('<value><struct><member><name>a</name></member></struct></value>'), /member "a" without <value>/],
      [call('<value><struct><member><name>a</name><value/></member><member><name>a</name><value/></member></struct></value>'), /duplicate struct member "a"/],
      [call('<value><struct><value/></struct></value>'), /<struct> may hold only <member>/],
      [call('<value><array><value/></array></value>'), /exactly one <data>/],
      [call('<value><string>a</string><string>b</string></value>'), /more than one element/],
      [call('<value>text<int>1</int></value>'), /mixes text with <int>/],
      [call('<value><string><b>x</b></string></value>'), /text only/],
      [call(`${'<value><array><data>'.repeat(40)}${'</data></array></value>'.repeat(40)}`), /nested/i],
    ];
    for (const [xml, message] of cases) rejects(xml, Fault.INVALID_REQUEST, message);
  });

  it('keeps a __proto__ member as an own property without touching prototypes', () => {
    const v = one('<value><struct><member><name>__proto__</name><value><struct><member><name>polluted</name><value><boolean>1</boolean></value></member></struct></value></member>' +
      '<member><name>constructor</name><value><nil/></value></member></struct></value>') as Record<string, XmlRpcValue>;
    assert.ok(Object.hasOwn(v, '__proto__'));
    assert.deepEqual(Object.keys(v), ['__proto__', 'constructor']);
    assert.equal(Object.getPrototypeOf(v), Object.prototype);
    assert.deepEqual(Object.getOwnPropertyDescriptor(v, '__proto__')?.value, { polluted: true });
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal((v as Record<string, unknown>).polluted, undefined);
    assert.equal(v.constructor, null);
  });
});

describe('encodeResponse', () => {
  const valueOf = (v: XmlRpcValue) => /<param>([\s\S]*)<\/param>/.exec(encodeResponse(v))![1];

  it('picks the XML-RPC type for each value', () => {
    assert.equal(valueOf(2147483647), '<value><int>2147483647</int></value>');
    assert.equal(valueOf(-2147483648), '<value><int>-2147483648</int></value>');
    assert.equal(valueOf(2147483648), '<value><i8>2147483648</i8></value>');
    assert.equal(valueOf(Number.MIN_SAFE_INTEGER), '<value><i8>-9007199254740991</i8></value>');
    assert.equal(valueOf(2 ** 60), '<value><double>1152921504606847000</double></value>');
    assert.equal(valueOf(0.5), '<value><double>0.5</double></value>');
    assert.equal(valueOf(true), '<value><boolean>1</boolean></value>');
    assert.equal(valueOf(false), '<value><boolean>0</boolean></value>');
    assert.equal(valueOf(null), '<value><nil/></value>');
    assert.equal(valueOf(new Uint8Array([0, 255])), '<value><base64>AP8=</base64></value>');
    assert.equal(valueOf(' <a&b>\r\n '), '<value><string> &lt;a&amp;b&gt;&#13;\n </string></value>');
    assert.equal(valueOf({ a: [], 'b<': {} }), '<value><struct><member><name>a</name><value><array><data></data></array></value></member><member><name>b&lt;</name><value><struct></struct></value></member></struct></value>');
    assert.equal(valueOf({ a: undefined, b: 1 } as unknown as XmlRpcValue), '<value><struct><member><name>b</name><value><int>1</int></value></member></struct></value>');
    assert.match(encodeResponse('x'), /^<\?xml version="1.0" encoding="UTF-8"\?>\n<methodResponse><params><param>/);
  });

  it('throws a plain Error for what XML-RPC cannot carry', () => {
    const bad: unknown[] = ['bell\u0007', 'nul\u0000', { ['k\u0001']: 1 }, 'lone \uD800', '\uFFFF', NaN, Infinity, new Date(0), [undefined], 10n, new Map()];
    for (const v of bad) {
      assert.throws(() => encodeResponse(v as XmlRpcValue), (e: unknown) => e instanceof Error && !(e instanceof KumoError), String(v));
    }
    const cyclic: Record<string, XmlRpcValue> = {};
    cyclic.self = cyclic;
    assert.throws(() => encodeResponse(cyclic), /nested too deeply/);
  });

  it('round-trips arbitrary values through decodeCall', () => {
    const forbidden = /[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;
    const text = fc.oneof(
      fc.string({ unit: 'binary' }),
      fc.string({ unit: fc.constantFrom(' ', '\t', '\n', '\r', '\r\n', '<', '>', '&', ';', '&amp;', ']]>', '<![CDATA[', '"', "'", 'é', '🚀', 'x') }),
    ).filter((s) => !forbidden.test(s));
    const { value } = fc.letrec<{ value: XmlRpcValue }>((tie) => ({
      value: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        text,
        fc.maxSafeInteger(),
        fc.double({ noNaN: true, noDefaultInfinity: true }).filter((d) => !Number.isInteger(d)),
        fc.boolean(),
        fc.constant(null),
        fc.uint8Array({ maxLength: 64 }),
        fc.array(tie('value'), { maxLength: 5 }),
        fc.dictionary(text, tie('value'), { maxKeys: 5, noNullPrototype: true }),
      ),
    }));
    fc.assert(fc.property(value, (v) => {
      assert.deepStrictEqual(decodeCall(callWrapping(encodeResponse(v))).params, [v]);
    }), { numRuns: 500 });
  });

  it('writes responses Python xmlrpc.client reads back', () => {
    const v = { vmId: 'vm-0123456789ab', n: [0, -1, 2147483648, 0.25], ok: true, off: false, nothing: null, text: ' <&> 日本\r\n\t', blob: new Uint8Array([0, 1, 255]), nested: { a: [] } };
    const out = JSON.parse(python(PY_LOADS, encodeResponse(v)));
    assert.deepEqual(out, { params: [{ ...v, blob: { $base64: 'AAH/' } }] });
  });
});

describe('encodeFault', () => {
  it('writes the xmlrpc.com fault struct', () => {
    assert.equal(encodeFault(3, 'vm vm-1 <x> not found'),
      '<?xml version="1.0" encoding="UTF-8"?>\n<methodResponse><fault><value><struct>' +
      '<member><name>faultCode</name><value><int>3</int></value></member>' +
      '<member><name>faultString</name><value><string>vm vm-1 &lt;x&gt; not found</string></value></member>' +
      '</struct></value></fault></methodResponse>\n');
  });

  it('never fails on the message: unrepresentable characters become U+FFFD', () => {
    assert.match(encodeFault(Fault.INTERNAL, 'a\u0000b'), /<string>a\uFFFDb<\/string>/);
    assert.throws(() => encodeFault(1.5, 'x'), /not an int/);
  });

  it('makes Python xmlrpc.client raise Fault with its code and string', () => {
    const out = JSON.parse(python(PY_LOADS, encodeFault(Fault.INVALID_PARAMS, 'unknown member "size" & <more>')));
    assert.deepEqual(out, { fault: { faultCode: 5, faultString: 'unknown member "size" & <more>' } });
    const raised = python(`
import sys, xmlrpc.client
try:
    xmlrpc.client.loads(sys.stdin.read())
except xmlrpc.client.Fault as f:
    print(type(f).__name__, f.faultCode)`, encodeFault(5, 'x'));
    assert.equal(raised.trim(), 'Fault 5');
  });
});
