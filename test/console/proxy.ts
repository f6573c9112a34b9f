/**
 * A TCP proxy in front of the test server, so a test can cut every connection (and refuse
 * new ones for a while) to prove that viewers resume by offset after a network drop.
 */
import net from 'node:net';

export class CutProxy {
  private readonly live = new Set<net.Socket>();
  private refuseUntil = 0;
  readonly cuts: number[] = [];

  private constructor(private readonly server: net.Server, readonly port: number) {}

  static async start(targetPort: number, targetHost = '127.0.0.1'): Promise<CutProxy> {
    let self: CutProxy | undefined;
    const server = net.createServer((client) => {
      if (!self || Date.now() < self.refuseUntil) {
        client.destroy();
        return;
      }
      const upstream = net.connect(targetPort, targetHost);
      const pair = [client, upstream];
      for (const s of pair) {
        self.live.add(s);
        s.on('error', () => {});
        s.on('close', () => {
          self!.live.delete(s);
          for (const o of pair) o.destroy();
        });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    self = new CutProxy(server, (server.address() as net.AddressInfo).port);
    return self;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Drop every open connection and refuse new ones for `refuseMs`. Returns how many were cut. */
  cut(refuseMs: number): number {
    this.refuseUntil = Date.now() + refuseMs;
    const n = this.live.size;
    for (const s of [...this.live]) s.destroy();
    this.cuts.push(n);
    return n;
  }

  async close(): Promise<void> {
    for (const s of [...this.live]) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
