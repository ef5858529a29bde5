// Which nginx version the sidecar renders for (src/nginx/serving-version.ts effectiveNginx), and
// the banner both version readers parse (src/nginx/version.ts versionInBanner). Reading a real
// master's binary is spec/integration/serving-version.spec.ts's.
import assert from 'node:assert/strict';
import { effectiveNginx } from '../../../src/nginx/serving-version.ts';
import { versionInBanner } from '../../../src/nginx/version.ts';

describe('effectiveNginx: the version to render for', () => {
  type Row = [
    what: string,
    input: { checking: string | null; serving: string | null; flag: string | null },
    version: string | null,
    warnings: RegExp[],
  ];
  const rows: Row[] = [
    ['both the same: that one, quietly', { checking: '1.30.4', serving: '1.30.4', flag: null }, '1.30.4', []],
    [
      'serving newer than nginx -t: the older, naming both and what is off',
      { checking: '1.22.1', serving: '1.30.4', flag: null },
      '1.22.1',
      [
        /^nginx -t \(--nginx-binary\) is nginx 1\.22\.1 but the serving nginx is 1\.30\.4: rendering for 1\.22\.1, which both accept, without what needs a newer nginx: `http2 on;` \(1\.25\.1\+\), reload-free endpoints \(1\.27\.3\+\)$/,
      ],
    ],
    [
      'serving older than nginx -t: the serving one, which could not load newer files',
      { checking: '1.30.4', serving: '1.26.2', flag: null },
      '1.26.2',
      [
        /^nginx -t \(--nginx-binary\) is nginx 1\.30\.4 but the serving nginx is 1\.26\.2: rendering for 1\.26\.2, which both accept, without what needs a newer nginx: reload-free endpoints \(1\.27\.3\+\)$/,
      ],
    ],
    [
      'a difference that changes no feature: still said, nothing named as off',
      { checking: '1.30.4', serving: '1.30.0', flag: null },
      '1.30.0',
      [
        /^nginx -t \(--nginx-binary\) is nginx 1\.30\.4 but the serving nginx is 1\.30\.0: rendering for 1\.30\.0, which both accept$/,
      ],
    ],
    [
      "serving unknown, no flag: nginx -t's, said to be assumed",
      { checking: '1.30.4', serving: null, flag: null },
      '1.30.4',
      [
        /^the serving nginx's version is unknown .*: assuming it is nginx -t's, 1\.30\.4; set --nginx-version if it differs$/,
      ],
    ],
    [
      'the flag stands for the serving nginx when it cannot be read',
      { checking: '1.30.4', serving: null, flag: '1.30.4' },
      '1.30.4',
      [],
    ],
    [
      'the flag wins over detection, and the disagreement is said',
      { checking: '1.30.4', serving: '1.30.4', flag: '1.26.0' },
      '1.26.0',
      [
        /^--nginx-version says the serving nginx is 1\.26\.0, but its binary says 1\.30\.4: using 1\.26\.0, as the flag says$/,
        /^nginx -t \(--nginx-binary\) is nginx 1\.30\.4 but the serving nginx \(--nginx-version\) is 1\.26\.0: rendering for 1\.26\.0/,
      ],
    ],
    [
      'a flag newer than nginx -t still renders for nginx -t',
      { checking: '1.22.1', serving: null, flag: '1.30.4' },
      '1.22.1',
      [
        /^nginx -t \(--nginx-binary\) is nginx 1\.22\.1 but the serving nginx \(--nginx-version\) is 1\.30\.4: rendering for 1\.22\.1/,
      ],
    ],
    ['no nginx -t (no binary): the serving one', { checking: null, serving: '1.30.4', flag: null }, '1.30.4', []],
    ['no nginx -t, a flag: the flag', { checking: null, serving: null, flag: '1.27.3' }, '1.27.3', []],
    [
      'nothing known: null (the oldest syntax), said with what is off',
      { checking: null, serving: null, flag: null },
      null,
      [
        /^the versions of the serving nginx and of nginx -t are both unknown: rendering for the oldest nginx supported, without `http2 on;` \(1\.25\.1\+\), reload-free endpoints \(1\.27\.3\+\); set --nginx-version/,
      ],
    ],
    [
      'a version text that is not one counts as unknown',
      { checking: '1.30.4', serving: 'garbage', flag: null },
      '1.30.4',
      [/serving nginx's version is unknown/],
    ],
  ];
  for (const [what, input, version, warnings] of rows) {
    it(what, () => {
      const got = effectiveNginx(input);
      assert.equal(got.version, version);
      assert.equal(got.warnings.length, warnings.length, `warnings: ${JSON.stringify(got.warnings)}`);
      warnings.forEach((re, i) => assert.match(got.warnings[i]!, re));
    });
  }
});

describe('versionInBanner', () => {
  it('reads what nginx -v prints and what the binary holds', () => {
    assert.equal(versionInBanner('nginx version: nginx/1.22.1\n'), '1.22.1');
    assert.equal(versionInBanner('nginx version: nginx/1.30.4 (Ubuntu)\nbuilt by gcc'), '1.30.4');
    // As a C string constant in the binary: NUL-terminated, the next constant right after.
    assert.equal(versionInBanner('nginx version: nginx/1.30.4\n\0\0nginx/1.30.4\0'), '1.30.4');
  });

  it('is null without a banner, or with a version that is not major.minor.patch', () => {
    assert.equal(versionInBanner('Server: nginx/1.30.4'), null);
    assert.equal(versionInBanner('nginx version: nginx/1.30'), null);
    assert.equal(versionInBanner('nginx version: openresty/1.25.3.1'), null);
    assert.equal(versionInBanner(''), null);
  });
});
