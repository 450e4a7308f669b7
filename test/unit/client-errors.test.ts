import { once } from 'node:events';
import { createServer, connect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { answerClientError } from '../../src/api/client-errors.ts';

/** What a client reads when the server side of a loopback connection is answered with `code`. */
async function answerTo(code: string): Promise<string> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const client = connect({ host: '127.0.0.1', port });
  const chunks: Buffer[] = [];
  client.on('data', (chunk: Buffer) => chunks.push(chunk));
  const [socket] = await accepted;
  socket.on('error', () => {});
  answerClientError(Object.assign(new Error(code), { code }), socket);
  await once(client, 'close');
  server.close();
  return Buffer.concat(chunks).toString('latin1');
}

describe('answers to what the HTTP parser refused', () => {
  it('a request too slow to arrive is 408 request_timeout as problem+json, and the connection is closed', async () => {
    const answer = await answerTo('ERR_HTTP_REQUEST_TIMEOUT');
    expect(answer).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
    expect(answer).toMatch(/^connection: close\r$/m);
    const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4));
    expect(body).toMatchObject({
      status: 408,
      code: 'request_timeout',
      type: 'https://secventory.dev/problems/request-timeout',
    });
  });

  it('the content-length is the byte length of the body', async () => {
    const answer = await answerTo('HPE_INVALID_HEADER_TOKEN');
    const length = Number(/^content-length: (\d+)\r$/m.exec(answer)?.[1]);
    expect(Buffer.byteLength(answer.slice(answer.indexOf('\r\n\r\n') + 4), 'latin1')).toBe(length);
  });
});
