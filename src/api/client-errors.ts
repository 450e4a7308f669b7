import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { problem, statusOfCode, type ErrorCode } from './errors.ts';

/** What Node's HTTP parser refused, in the words of docs/API.md. */
function refusalOf(errorCode: string | undefined): { code: ErrorCode; detail: string } {
  switch (errorCode) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { code: 'request_timeout', detail: 'the request did not arrive completely in time; nothing was done' };
    case 'HPE_HEADER_OVERFLOW':
      return {
        code: 'headers_too_large',
        detail: 'the request headers are larger than the server accepts; nothing was done',
      };
    default:
      return {
        code: 'validation_failed',
        detail: 'the request is not valid HTTP (for example a NUL or control byte in a header); nothing was done',
      };
  }
}

/**
 * Answers a request that Node's HTTP parser refused before Fastify saw it (a NUL or control byte
 * in a header, a malformed request line, headers over the size limit, a request too slow to
 * arrive) like every other refusal: problem+json with a stable code and an x-request-id. There is
 * no request to route, so the answer is written on the socket, which is then closed: after a
 * framing error nothing more on that connection can be trusted.
 */
export function answerClientError(error: Error & { code?: string }, socket: Socket): void {
  // A reset connection has nobody left to answer.
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  if (socket.writable) {
    const { code, detail } = refusalOf(error.code);
    const status = statusOfCode(code);
    const body = JSON.stringify(problem(code, detail));
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
        'content-type: application/problem+json\r\n' +
        `content-length: ${Buffer.byteLength(body)}\r\n` +
        `x-request-id: ${randomUUID()}\r\n` +
        'connection: close\r\n\r\n' +
        body,
    );
  }
  socket.destroy(error);
}
