import { filePathFromUrl, parseContentLength, parsePrefix, parseVersion } from './paths';

describe('filePathFromUrl', () => {
  it.each([
    ['/v1/files/a', 'a'],
    ['/v1/files/a/b/c.txt?version=2', 'a/b/c.txt'],
    ['/v1/files/dir%20x/caf%C3%A9', 'dir x/café'],
    ['/v1/files/..a/b..', '..a/b..'],
    ['/v1/files/a%3Fb', 'a?b'],
    [`/v1/files/${'x'.repeat(1024)}`, 'x'.repeat(1024)],
  ])('%s -> %s', (url, path) => {
    expect(filePathFromUrl(url)).toBe(path);
  });

  it.each(['/v1/files/', '/v1/files/..', '/v1/files/a/%2E', '/v1/files/a%2F..', '/v1/files/%', '/v1/files/a%00', '/v1/files/a//b', '/v1/files/a/', '/v1/files/%5C', `/v1/files/${'x'.repeat(1025)}`, '/v1/other/a'])(
    'rejects %s as invalid_argument',
    (url) => {
      expect(() => filePathFromUrl(url)).toThrow(expect.objectContaining({ name: 'InvalidArgumentError', code: 'invalid_argument' }));
    },
  );
});

describe('query and header values', () => {
  it('parses versions', () => {
    expect(parseVersion(undefined)).toBeUndefined();
    expect(parseVersion('1')).toBe(1);
    expect(parseVersion(String(Number.MAX_SAFE_INTEGER))).toBe(Number.MAX_SAFE_INTEGER);
    for (const bad of ['0', '01', '-1', '1e3', '', ['1', '2'], '9007199254740993']) expect(() => parseVersion(bad)).toThrow(/version/);
  });

  it('parses prefixes and Content-Length', () => {
    expect(parsePrefix(undefined)).toBe('');
    expect(parsePrefix('a/')).toBe('a/');
    expect(() => parsePrefix(['a', 'b'])).toThrow(/prefix/);
    expect(() => parsePrefix('a\u0000')).toThrow(/prefix/);
    expect(parseContentLength(undefined)).toBeUndefined();
    expect(parseContentLength('0')).toBe(0);
    expect(() => parseContentLength('-1')).toThrow(/Content-Length/);
  });
});
