// The value grammars' refusals that need no nginx to show (what they accept, and their
// refusals next to nginx's own, go through a real `nginx -t` in spec/integration/grammar.spec.ts).
import assert from 'node:assert/strict';
import { ANNOTATION_PREFIX, parseAnnotations, parseRegexPath } from '../../src/annotations/index.ts';
import { upstreamAddress } from '../../src/grammar.ts';

const A = (name: string) => `${ANNOTATION_PREFIX}${name}`;

describe('grammars match what nginx parses', function () {
  describe('endpoint addresses', () => {
    it('skips what is not an address (not a string, zone IDs)', () => {
      assert.equal(upstreamAddress(42 as unknown as string, 80), null);
      assert.equal(upstreamAddress('fe80::1%eth0', 80), null);
      assert.equal(upstreamAddress('1.2.3', 80), null);
    });
  });

  describe('nginx token length (4095 bytes)', () => {
    it('refuses CORS header lists that would be one header value of 4096 bytes or more', () => {
      const headers = Array.from({ length: 200 }, (_, i) => `X-Header-${i}-${'h'.repeat(20)}`).join(',');
      assert.throws(
        () =>
          parseAnnotations(
            { [A('enable-cors')]: 'true', [A('cors-allow-headers')]: headers },
            { namespace: 'default', tlsEnabled: true },
          ),
        /cors-allow-headers.*too long/,
      );
      assert.throws(
        () =>
          parseAnnotations(
            { [A('enable-cors')]: 'true', [A('cors-expose-headers')]: headers },
            { namespace: 'default', tlsEnabled: true },
          ),
        /cors-expose-headers.*too long/,
      );
    });
  });

  describe('regex paths, as PCRE2 compiles them', () => {
    it('refuses "{" and "}" that do not form a repetition ("{,3}" is one in PCRE2 10.43, a literal to JavaScript)', () => {
      for (const r of ['/a{,3}', '/x{', '/x}', '/x{2,'])
        assert.throws(() => parseRegexPath(r), /repetition|nothing/i, r);
    });
  });
});
