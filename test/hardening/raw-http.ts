import { connect } from 'node:net';

// HTTP/1.1 over a bare socket, for requests no HTTP client sends: header values with any byte
// (NUL, control characters, Latin-1, the WTF-8 bytes of a lone surrogate). Node's and undici's
// clients refuse such headers before sending them.

export interface RawRequest {
  readonly method: string;
  /** The request target, already percent-encoded. */
  readonly target: string;
  readonly headers: readonly (readonly [name: string, value: Buffer | string])[];
  readonly body?: Buffer;
}

export interface RawResponse {
  /** 0 when the server closed the connection without answering. */
  readonly status: number;
  readonly contentType: string;
  /** Every header of the answer, by lower-case name (the last one when a name repeats). */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

const CR = 0x0d;
const LF = 0x0a;

/**
 * A header value as bytes. CR and LF cannot be carried in a field value: they end the header
 * line (and would inject another), so they are left out; every other byte is sent as it is.
 */
function fieldValue(value: Buffer | string): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'latin1') : value;
  return Buffer.from(bytes.filter((b) => b !== CR && b !== LF));
}

function requestBytes(host: string, request: RawRequest): Buffer {
  const head: Buffer[] = [
    Buffer.from(`${request.method} ${request.target} HTTP/1.1\r\nhost: ${host}\r\nconnection: close\r\n`, 'latin1'),
  ];
  for (const [name, value] of request.headers)
    head.push(Buffer.from(`${name}: `, 'latin1'), fieldValue(value), Buffer.from('\r\n'));
  if (request.body !== undefined) head.push(Buffer.from(`content-length: ${request.body.length}\r\n`));
  head.push(Buffer.from('\r\n'));
  if (request.body !== undefined) head.push(request.body);
  return Buffer.concat(head);
}

function parse(bytes: Buffer): RawResponse {
  const end = bytes.indexOf('\r\n\r\n');
  const head = bytes.subarray(0, end === -1 ? bytes.length : end).toString('latin1');
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
  const headers: Record<string, string> = {};
  for (const line of head.split('\r\n').slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const contentType = headers['content-type'] ?? '';
  return { status, contentType, headers, body: end === -1 ? '' : bytes.subarray(end + 4).toString('utf8') };
}

/** Sends one request on its own connection and reads the answer until the server closes it. */
export function sendRaw(baseUrl: string, request: RawRequest, waitMsMax = 10_000): Promise<RawResponse> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => socket.destroy(new Error(`no answer within ${waitMsMax} ms`)), waitMsMax);
    socket.on('connect', () => socket.write(requestBytes(`${hostname}:${port}`, request)));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on('close', (hadError) => {
      clearTimeout(timer);
      if (!hadError) resolve(parse(Buffer.concat(chunks)));
    });
  });
}
