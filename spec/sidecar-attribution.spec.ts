import assert from 'node:assert/strict';
import { ingressAt } from '../src/sidecar.ts';

describe('naming the Ingress behind a line nginx refused', () => {
  const file = [
    'server {',
    '    server_name a.test;',
    '    # serves Ingress default/one',
    '    # serves Ingress default/two',
    '',
    '    # Prefix /x from Ingress default/one -> Service default/web:80',
    '    location /x/ {',
    '        proxy_pass http://default_web_80;',
    '    }',
    '',
    '    # Exact /y from Ingress other/two -> Service other/api:8080',
    '    location = /y {',
    '        proxy_pass http://other_api_8080;',
    '    }',
    '}',
  ].join('\n');

  it('is the Ingress of the location around that line', () => {
    assert.equal(ingressAt(file, 8), 'default/one');
    assert.equal(ingressAt(file, 13), 'other/two');
  });

  it('is unknown for the server-level lines that several Ingresses share', () => {
    assert.equal(ingressAt(file, 2), null);
    assert.equal(ingressAt(undefined, 2), null);
  });
});
