// A Renderer reuses the text of a server whose inputs did not change since its previous render
// (mustache is the larger part of a pass at thousands of hosts). Whatever the order of calls, the
// files must be exactly those a first rendering gives.
import { deepStrictEqual, notDeepStrictEqual } from 'node:assert/strict';
import { generateSelfSignedCertificate } from '../../src/nginx/cert-store.ts';
import type { RoutingModel } from '../../src/model.ts';
import { Renderer } from '../../src/nginx/render.ts';
import { translate, type TranslateOptions } from '../../src/translate/index.ts';
import { backendService, ingress, path, rule, snapshot } from '../helpers/builders.ts';

describe('Renderer: reused server texts', () => {
  let tls: NonNullable<TranslateOptions['tls']>;
  let other: NonNullable<TranslateOptions['tls']>;
  before(async () => {
    tls = { httpsPort: 443, certDir: '/c', defaultCertificate: await generateSelfSignedCertificate() };
    other = { ...tls, defaultCertificate: await generateSelfSignedCertificate() };
  });

  const snap = (annotations: Record<string, string> = {}) =>
    snapshot({
      ingresses: [
        ingress('a', [rule('a.test', path('/', 'Prefix', 'web'))], { age: 0 }),
        ingress('b', [rule('b.test', path('/', 'Prefix', 'web'))], { age: 1, annotations }),
      ],
      backends: [backendService('web')],
    });
  const model = (o: Partial<TranslateOptions>, annotations?: Record<string, string>): RoutingModel =>
    translate(snap(annotations), { ingressClass: 'nginx', httpPort: 80, ipv6: false, now: new Date(), tls, ...o });
  /** What a renderer that never saw anything before gives. */
  const fresh = (m: RoutingModel) => new Renderer().render(m).files;

  it('gives the same files as a fresh rendering after any change that reaches a server', () => {
    const variants: Array<[string, Partial<TranslateOptions>, Record<string, string>?]> = [
      ['base', {}],
      ['http port', { httpPort: 8080 }],
      ['IPv6', { ipv6: true }],
      ['access log', { accessLog: '/var/log/x.log' }],
      ['HTTPS redirect port', { tls: { ...tls, httpsRedirectPort: 8443 } }],
      ['default certificate', { tls: other }],
      ['TLS off', { tls: undefined, now: undefined }],
      ['an annotation of one Ingress', {}, { 'nginx.ingress.kubernetes.io/proxy-body-size': '8m' }],
    ];
    const renderer = new Renderer();
    let previous: Map<string, string> | null = null;
    for (const [name, o, annotations] of variants) {
      const m = model(o, annotations);
      const reused = renderer.render(m).files;
      deepStrictEqual(reused, fresh(m), name);
      if (previous) notDeepStrictEqual(reused, previous, `${name} changes the files`);
      previous = fresh(m);
    }
  });
});
