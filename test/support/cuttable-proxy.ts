import net from 'node:net';

// A loopback TCP proxy in front of a test server (or a database) whose connections the test can cut
// at any moment: what a client sees when a network path or a load balancer drops a long-lived
// answer. While it is down, every new connection is closed at once, as an unreachable server's would.

export class CuttableProxy {
  private readonly sockets = new Set<net.Socket>();
  private server: net.Server | undefined;
  private isDown = false;
  cuts = 0;

  private constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  static async start(targetUrl: string): Promise<CuttableProxy & { url: string; port: number }> {
    const target = new URL(targetUrl);
    const proxy = new CuttableProxy(target.hostname, Number(target.port));
    const server = net.createServer((client) => proxy.relay(client));
    proxy.server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    return Object.assign(proxy, { url: `http://127.0.0.1:${port}`, port });
  }

  private relay(client: net.Socket): void {
    if (this.isDown) {
      client.resetAndDestroy();
      return;
    }
    const upstream = net.connect(this.targetPort, this.targetHost);
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /** Drops every connection at once, as a failed network path does (no orderly end). */
  cut(): void {
    this.cuts++;
    for (const socket of this.sockets) socket.resetAndDestroy();
  }

  /** Cuts every connection and refuses new ones until up(). */
  down(): void {
    this.isDown = true;
    this.cut();
  }

  up(): void {
    this.isDown = false;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }
}
