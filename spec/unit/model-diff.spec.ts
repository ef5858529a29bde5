import assert from 'node:assert/strict';
import { diffModels } from '../../src/sync/model-diff.ts';
import { backendService, ingress, path, rule, snapshot } from '../helpers/builders.ts';
import { model } from './translate/common.ts';

describe('what a reload changed, for the log line', () => {
  const backends = [backendService('a', '10.0.0.1'), backendService('b', '10.0.0.2')];
  const before = model(
    snapshot({
      ingresses: [
        ingress('i', [rule('x.test', path('/api', 'Exact', 'a')), rule('gone.test', path('/', 'Prefix', 'a'))]),
      ],
      backends,
    }),
  );

  it('names servers and locations added and removed, and upstreams whose endpoints changed', () => {
    const after = model(
      snapshot({
        ingresses: [
          ingress('i', [rule('x.test', path('/api', 'Exact', 'b')), rule('new.test', path('/', 'Prefix', 'a'))]),
        ],
        backends: [backendService('a', '10.0.0.9'), backendService('b', '10.0.0.2')],
      }),
    );
    assert.deepEqual(diffModels(before, after), {
      serversAdded: ['new.test'],
      serversRemoved: ['gone.test'],
      locationsAdded: ['new.test / -> default_a_80', 'x.test = /api -> default_b_80'],
      locationsRemoved: ['gone.test / -> default_a_80', 'x.test = /api -> default_a_80'],
      upstreamsChanged: ['default_a_80', 'default_b_80'],
      tlsChanged: [],
    });
  });

  it('is everything on the first reload, and nothing when the model is the same', () => {
    assert.deepEqual(diffModels(null, before).serversAdded, ['gone.test', 'x.test']);
    assert.deepEqual(diffModels(before, before), {
      serversAdded: [],
      serversRemoved: [],
      locationsAdded: [],
      locationsRemoved: [],
      upstreamsChanged: [],
      tlsChanged: [],
    });
  });

  it('keeps a long list readable', () => {
    const many = model(
      snapshot({
        ingresses: [
          ingress(
            'i',
            Array.from({ length: 30 }, (_, n) => rule(`h${n}.test`, path('/', 'Prefix', 'a'))),
          ),
        ],
        backends,
      }),
    );
    const change = diffModels(null, many);
    assert.equal(change.serversAdded.length, 21);
    assert.equal(change.serversAdded[20], '...and 10 more');
  });
});
