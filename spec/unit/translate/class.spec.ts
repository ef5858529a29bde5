import { deepStrictEqual } from 'node:assert/strict';
import { backendService, ingress, ingressClass, path, rule, snapshot } from '../../helpers/builders.ts';
import { translate } from '../../../src/translate/index.ts';
import { model, OPTS } from './common.ts';

describe('translate: which Ingresses are ours', () => {
  const rules = (host: string) => [rule(host, path('/', 'Prefix', 'web'))];
  const backends = [backendService('web')];

  it('serves spec.ingressClassName equal to --ingress-class, without any IngressClass object', () => {
    const m = model(snapshot({ ingresses: [ingress('a', rules('a.test'), { className: 'nginx' })], backends }));
    deepStrictEqual(
      m.servers.map((s) => s.host),
      ['a.test'],
    );
  });

  it('serves the legacy kubernetes.io/ingress.class annotation', () => {
    const ing = ingress('a', rules('a.test'), {
      className: null,
      annotations: { 'kubernetes.io/ingress.class': 'nginx' },
    });
    deepStrictEqual(
      model(snapshot({ ingresses: [ing], backends })).servers.map((s) => s.host),
      ['a.test'],
    );
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
    deepStrictEqual(
      model(snapshot({ ingresses: [ing], ingressClasses: [ingressClass('nginx', false)], backends })).servers,
      [],
    );
    deepStrictEqual(
      model(snapshot({ ingresses: [ing], ingressClasses: [ingressClass('other', true)], backends })).servers,
      [],
    );
    const served = model(snapshot({ ingresses: [ing], ingressClasses: [ingressClass('nginx', true)], backends }));
    deepStrictEqual(
      served.servers.map((s) => s.host),
      ['a.test'],
    );
  });

  describe('with --watch-ingress-without-class', () => {
    const withoutClass = (snap: ReturnType<typeof snapshot>) =>
      translate(snap, { ...OPTS, watchIngressWithoutClass: true });

    it('serves an Ingress that names no class, whatever the IngressClasses say', () => {
      const ing = ingress('a', rules('a.test'), { className: null });
      for (const ingressClasses of [
        [],
        [ingressClass('nginx', false)],
        [ingressClass('other', true)],
        [ingressClass('nginx', true)],
      ]) {
        const m = withoutClass(snapshot({ ingresses: [ing], ingressClasses, backends }));
        deepStrictEqual(
          m.servers.map((s) => s.host),
          ['a.test'],
          JSON.stringify(ingressClasses.map((c) => c.metadata?.name)),
        );
        deepStrictEqual(m.served, ['default/a']);
      }
    });

    it('still ignores Ingresses that name another class, by field or annotation, and serves ours', () => {
      const m = withoutClass(
        snapshot({
          ingresses: [
            ingress('a', rules('a.test'), { className: 'traefik' }),
            ingress('b', rules('b.test'), {
              className: null,
              annotations: { 'kubernetes.io/ingress.class': 'haproxy' },
            }),
            ingress('c', rules('c.test'), { className: 'nginx' }),
            ingress('d', rules('d.test'), { className: null, annotations: { 'kubernetes.io/ingress.class': 'nginx' } }),
            ingress('e', rules('e.test'), { className: null }),
          ],
          backends,
        }),
      );
      deepStrictEqual(
        m.servers.map((s) => s.host),
        ['c.test', 'd.test', 'e.test'],
      );
      deepStrictEqual(m.rejections, []);
    });
  });
});
