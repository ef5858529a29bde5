// src/errors.ts: the one description of an error, as logs, Events and stderr show it.
import assert from 'node:assert/strict';
import { ApiException } from '@kubernetes/client-node';
import { describe as describeError } from '../../src/errors.ts';

describe('describe(err)', () => {
  it('gives an API error its status and the API server message', () => {
    const body = JSON.stringify({ kind: 'Status', message: 'leases.coordination.k8s.io "x" is forbidden' });
    const err = new ApiException(403, 'HTTP-Code: 403\nMessage: ...', body, {});
    assert.equal(describeError(err), 'HTTP 403: leases.coordination.k8s.io "x" is forbidden');
    assert.equal(describeError(new ApiException(500, 'HTTP-Code: 500\nMessage: x', '', {})), 'HTTP 500');
  });

  it("keeps a Watch failure's status text", () => {
    assert.equal(describeError(Object.assign(new Error('Forbidden'), { statusCode: 403 })), 'HTTP 403: Forbidden');
  });

  it('does not read a request timeout or abort as an HTTP status', () => {
    const timeout = new DOMException('The operation was aborted due to timeout', 'TimeoutError');
    assert.equal(describeError(timeout), 'The operation was aborted due to timeout');
    assert.equal(
      describeError(new DOMException('This operation was aborted', 'AbortError')),
      'This operation was aborted',
    );
  });

  it('names the system error code, once', () => {
    assert.equal(describeError(Object.assign(new Error('no such file'), { code: 'ENOENT' })), 'ENOENT (no such file)');
    assert.equal(
      describeError(Object.assign(new Error("ENOENT: no such file or directory, open 'x'"), { code: 'ENOENT' })),
      "ENOENT: no such file or directory, open 'x'",
    );
  });

  it("adds the cause fetch leaves out, including an AggregateError's", () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6443'), { code: 'ECONNREFUSED' });
    assert.equal(
      describeError(new TypeError('fetch failed', { cause: refused })),
      'fetch failed: connect ECONNREFUSED 127.0.0.1:6443',
    );
    const both = Object.assign(new AggregateError([refused]), { code: 'ECONNREFUSED' });
    assert.match(describeError(new TypeError('fetch failed', { cause: both })), /^fetch failed: .*ECONNREFUSED/);
    const wrapped = new Error('could not write /x: EACCES (denied)', {
      cause: Object.assign(new Error('denied'), { code: 'EACCES' }),
    });
    assert.equal(describeError(wrapped), 'could not write /x: EACCES (denied)');
  });

  it('describes what is not an Error', () => {
    assert.equal(describeError('plain'), 'plain');
    assert.equal(describeError(42), '42');
    assert.equal(describeError(Object.create(null)), '[object Object]');
  });
});
