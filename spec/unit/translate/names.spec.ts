// src/translate/names.ts: the file names of servers and the server_names hash sizes.
import { equal, deepStrictEqual, ok } from 'node:assert/strict';
import {
  FILE_PREFIX,
  MAIN_FILE,
  UPSTREAMS_FILE,
  serverFile,
  serverNamesHashSizes,
} from '../../../src/translate/names.ts';

describe('translate: derived names', () => {
  it('sorts the main file first among the files it writes', () => {
    const files = [UPSTREAMS_FILE, serverFile('a.test'), serverFile('*.a.test'), MAIN_FILE].sort();
    equal(files[0], MAIN_FILE);
  });

  it('names a host file after the host, a wildcard spelled out', () => {
    equal(serverFile('shop.test'), `${FILE_PREFIX}-server-shop.test.conf`);
    equal(serverFile('*.shop.test'), `${FILE_PREFIX}-server-_wildcard_.shop.test.conf`);
  });

  it('keeps a long host name within a file name, distinct from another with the same start', () => {
    const label = 'a'.repeat(63);
    const long = [label, label, label, 'x'.repeat(30), 'test'].join('.');
    const other = [label, label, label, 'y'.repeat(30), 'test'].join('.');
    ok(Buffer.byteLength(serverFile(long)) <= 255);
    ok(serverFile(long) !== serverFile(other));
    ok(serverFile(long).startsWith(`${FILE_PREFIX}-server-${long.slice(0, 180)}-`));
  });

  it('sizes the server_names hash from the longest name and the count, never below nginx defaults', () => {
    deepStrictEqual(serverNamesHashSizes([]), { bucketSize: 64, maxSize: 1024 });
    deepStrictEqual(serverNamesHashSizes(['shop.test']), { bucketSize: 64, maxSize: 1024 });
    // 200 characters + 2, pointer-aligned (208), + 16: 224, so the next power of two.
    equal(serverNamesHashSizes(['a'.repeat(200)]).bucketSize, 256);
    equal(serverNamesHashSizes(Array.from({ length: 1000 }, (_, i) => `h${i}.test`)).maxSize, 8192);
  });
});
