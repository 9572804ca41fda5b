import type { Socket } from "node:net";
import type { FastifyInstance } from "fastify";
import fp from "fastify-plugin";

/**
 * Closing waits for every connection to end. Node's closeIdleConnections() ends keep-alive
 * connections between requests, but not one that has not sent a byte yet (a client's spare
 * connection, or one it opened while this process's event loop was busy with a model run):
 * such a socket held close(), and so a shutdown, until REQUEST_TIMEOUT_MS. From close() on,
 * idle connections and connections that never sent anything are ended, and again every
 * 100 ms, as requests and streams in progress finish.
 */
export const connectionsPlugin = fp(async (app: FastifyInstance) => {
  const sockets = new Set<Socket>();
  app.server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  app.addHook("preClose", (done) => {
    const sweep = () => {
      app.server.closeIdleConnections();
      for (const socket of sockets) if (socket.bytesRead === 0) socket.destroy();
    };
    sweep();
    const timer = setInterval(sweep, 100).unref();
    app.server.once("close", () => clearInterval(timer));
    done();
  });
});
