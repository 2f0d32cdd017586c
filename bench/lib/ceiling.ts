/**
 * The ceilings of bench/api: servers that do no work of their own, driven by the same load generator
 * at the same concurrency, so the reader can see how much of what is possible on this machine kumo
 * reaches.
 *   node     a minimal Node http server (no framework, no parsing, no auth, no store): reads the
 *            request body and answers a fixed XML-RPC methodResponse.
 *   fastify  the framework kumo's API runs on (same version, same body limit, body read as a string
 *            as kumo's /RPC2 does), one route answering the same fixed response.
 *
 * Protocol: forked by bench/api.ts; receives {body, framework} and answers {port} once listening on
 * 127.0.0.1; stops on SIGTERM.
 */
import http from 'node:http';
import Fastify from 'fastify';

type Framework = 'node' | 'fastify';

async function listen(framework: Framework, text: string): Promise<{ port: number; close: () => Promise<void> }> {
  if (framework === 'fastify') {
    const app = Fastify({ bodyLimit: 1 << 20 });
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => done(null, body));
    app.post('/RPC2', async (_req, reply) => reply.type('text/xml; charset=utf-8').send(text));
    await app.listen({ host: '127.0.0.1', port: 0 });
    const a = app.server.address();
    return { port: typeof a === 'object' && a ? a.port : 0, close: () => app.close() };
  }
  const body = Buffer.from(text, 'utf8');
  const server = http.createServer((req, res) => {
    req.on('data', () => {});
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/xml; charset=utf-8', 'content-length': body.length });
      res.end(body);
    });
  });
  server.keepAliveTimeout = 72_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const a = server.address();
  return {
    port: typeof a === 'object' && a ? a.port : 0,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

process.once('message', (msg) => {
  const { body, framework } = msg as { body: string; framework?: Framework };
  void listen(framework ?? 'node', body).then(({ port, close }) => {
    process.send!({ port });
    process.once('SIGTERM', () => void close().finally(() => process.exit(0)));
  });
});
