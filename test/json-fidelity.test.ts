import fc from 'fast-check';
import t from 'tap';
import { invalidUtf8 } from '../src/http/body/json-body.js';
import { jsonLosses, numberLoss } from '../src/http/body/json-fidelity.js';

const losses = (text: string) => jsonLosses(JSON.parse(text), text);

t.test('a number literal is kept iff its decimal value is that of its double', async (t) => {
  for (const exact of ['0', '1', '-1', '1.0', '1E3', '1e+3', '0.1', '-0.5e-3', '5e-324', '1.7976931348623157e308',
    '9007199254740992', '123456789012345680000', '0.000001', '100e-2', '0e400', '0.0']) {
    t.equal(numberLoss(exact), undefined, `${exact} is exact`);
  }
  for (const [lost, reason] of [
    ['12345678901234567890', /would read back as 12345678901234567000/],
    ['9007199254740993', /would read back as 9007199254740992/],
    ['1e400', /overflows a double/],
    ['-1e400', /overflows/],
    ['1e-400', /would read back as 0/],
    ['-0', /would read back as 0/],
    ['-0.0e7', /would read back as 0/],
    ['3.14159265358979323846', /would read back as 3.141592653589793/],
    ['0.30000000000000000001', /would read back as 0.3/],
  ] as const) {
    t.match(numberLoss(lost), reason, `${lost} is refused`);
  }
  t.match(numberLoss('1'.repeat(500)), /^1{40}… overflows/, 'a long literal is clipped in the reason');
});

t.test('jsonLosses finds duplicate keys and inexact numbers with their paths', async (t) => {
  t.same(losses('{"a":1,"b":[1,2.5,{"c":null}]}'), [], 'canonical text: fast path');
  t.same(losses(' {\n  "b": 1,\n  "a": [ 1.0, "x\\"]{,", true ] }'), [], 'pretty-printed, escapes and brackets in strings');
  t.same(losses('{"b":1,"2":2,"1":3}'), [], 'integer-like keys come out first: reordering is not a loss');
  t.same(losses('{"a":{"x":1},"b":{"x":2}}'), [], 'the same key in two objects');
  t.same(losses('[{}, "k", {"k":1}, "k"]'), [], 'strings in arrays next to objects are not keys');
  t.same(losses('{"dup":1,"dup":2}'), [{ path: ['dup'], reason: 'the key "dup" appears more than once' }]);
  t.same(losses('{"a":1,"\\u0061":2}').map((l) => l.path), [['a']], 'an escaped key is the same key');
  t.same(losses('{"a":{},"b":1}'), [], 'an empty object');
  t.same(
    losses('{"events":[{"p":{"n":[1,2,12345678901234567890]}},{"p":{"x":-0,"x":1e400}}]}').map((l) => l.path),
    [['events', 0, 'p', 'n', 2], ['events', 1, 'p', 'x'], ['events', 1, 'p', 'x'], ['events', 1, 'p', 'x']],
    'the path of each loss: -0, the duplicate, then 1e400',
  );
  t.same(losses('1e400').map((l) => l.path), [[]], 'a bare number');
  t.equal(jsonLosses(JSON.parse(`[${'1e400,'.repeat(50)}0]`), `[${'1e400,'.repeat(50)}0]`, 10).length, 10, 'stops at max');
  const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
  t.same(jsonLosses(JSON.parse(deep), deep), [], 'deeper than JSON.stringify can recurse: the scan decides');
});

t.test('whatever JSON.stringify writes, and any reformatting of it, loses nothing', async (t) => {
  t.doesNotThrow(() => fc.assert(
    fc.property(fc.jsonValue(), fc.constantFrom(0, 2, '\t'), (value, indent) => {
      const text = JSON.stringify(value, null, indent);
      return jsonLosses(JSON.parse(text), text).length === 0;
    }),
    { numRuns: 500, seed: 20261126 },
  ), 'no loss reported');
});

t.test('invalidUtf8 names the first ill-formed sequence', async (t) => {
  const at = (...bytes: number[]) => invalidUtf8(Uint8Array.from(bytes));
  t.equal(at(0x61, 0xff), 'byte 0xFF at offset 1 cannot start a character');
  t.equal(at(0xfe), 'byte 0xFE at offset 0 cannot start a character');
  t.equal(at(0xc0, 0x80), 'byte 0xC0 at offset 0 cannot start a character', 'overlong NUL');
  t.equal(at(0xe0, 0x80, 0x80), 'byte 0x80 at offset 1 does not continue the character starting at offset 0', 'overlong');
  t.equal(at(0xed, 0xa0, 0x80), 'byte 0xA0 at offset 1 does not continue the character starting at offset 0', 'a surrogate');
  t.equal(at(0xf4, 0x90, 0x80, 0x80), 'byte 0x90 at offset 1 does not continue the character starting at offset 0', 'above U+10FFFF');
  t.equal(at(0x61, 0xe2, 0x82), 'the character starting at offset 1 is cut off by the end of the body');
  t.equal(at(0xe2, 0x82, 0x41), 'byte 0x41 at offset 2 does not continue the character starting at offset 0');
  t.doesNotThrow(() => fc.assert(
    fc.property(fc.uint8Array({ maxLength: 20 }), (bytes) => {
      const valid = (() => {
        try {
          new TextDecoder('utf-8', { fatal: true }).decode(bytes);
          return true;
        } catch {
          return false;
        }
      })();
      return valid || invalidUtf8(bytes) !== 'no ill-formed sequence found';
    }),
    { numRuns: 2_000, seed: 20261126 },
  ), 'every ill-formed byte string is located');
});
