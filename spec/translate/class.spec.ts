import { deepStrictEqual } from 'node:assert/strict';
import { backendService, ingress, ingressClass, path, rule, snapshot } from '../helpers/builders.ts';
import { model } from './common.ts';

describe('translate: which Ingresses are ours', () => {
  const rules = (host: string) => [rule(host, path('/', 'Prefix', 'web'))];
  const backends = [backendService('web')];

  it('serves spec.ingressClassName equal to --ingress-class, without any IngressClass object', () => {
    const m = model(snapshot({ ingresses: [ingress('a', rules('a.test'), { className: 'nginx' })], backends }));
    deepStrictEqual(m.servers.map((s) => s.host), ['a.test']);
  });

  it('serves the legacy kubernetes.io/ingress.class annotation', () => {
    const ing = ingress('a', rules('a.test'), { className: null, annotations: { 'kubernetes.io/ingress.class': 'nginx' } });
    deepStrictEqual(model(snapshot({ ingresses: [ing], backends })).servers.map((s) => s.host), ['a.test']);
  });

  it('ignores Ingresses of other classes, by field or annotation', () => {
    const m = model(
      snapshot({
        ingresses: [
          ingress('a', rules('a.test'), { className: 'traefik' }),
          ingress('b', rules('b.test'), { className: null, annotations: { 'kubernetes.io/ingress.class': 'haproxy' } }),
        ],
        ingressClasses: [ingressClass('nginx', true)],
        backends,
      }),
    );
    deepStrictEqual(m.servers, []);
    deepStrictEqual(m.rejections, []);
  });

  it('serves a class-less Ingress only when our IngressClass is marked default', () => {
    const ing = ingress('a', rules('a.test'), { className: null });
    deepStrictEqual(model(snapshot({ ingresses: [ing], backends })).servers, []);
    deepStrictEqual(model(snapshot({ ingresses: [ing], ingressClasses: [ingressClass('nginx', false)], backends })).servers, []);
    deepStrictEqual(model(snapshot({ ingresses: [ing], ingressClasses: [ingressClass('other', true)], backends })).servers, []);
    const served = model(snapshot({ ingresses: [ing], ingressClasses: [ingressClass('nginx', true)], backends }));
    deepStrictEqual(served.servers.map((s) => s.host), ['a.test']);
  });
});
