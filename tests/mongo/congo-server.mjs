// Starts the MongoDB stand-in (CongoDB from @push.rocks/smartmongo@2.2.0, installed by
// build/install-mongo-standin.sh) on 127.0.0.1:PORT and prints READY; SIGTERM or SIGINT stops it.
// Usage: node tests/mongo/congo-server.mjs PORT [PERSIST_FILE]
// With PERSIST_FILE the data is written there when the server stops and read back when it starts
// (a restart keeps the data, as a real server's does).
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';

const top = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const entry = path.join(process.env.PE_CONGODB_DIR || path.join(top, '.deps', 'congodb'),
                        'pack', 'package', 'dist_ts', 'congodb', 'index.js');
const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: congo-server.mjs PORT');
  process.exit(2);
}
const { CongoServer } = await import(pathToFileURL(entry).href);
const persist = process.argv[3] ? path.resolve(process.argv[3]) : '';
const server = new CongoServer(persist ? { port, host: '127.0.0.1', persistPath: persist, persistIntervalMs: 3600000 }
                                       : { port, host: '127.0.0.1' });
await server.start();
console.log('READY');
const stop = async () => {
  // NB: no new connection while the data is written out (CongoServer.stop closes its listener
  // only after that, and a client reconnecting meanwhile would write after the snapshot).
  try {
    if (server.server) server.server.close();
    await server.stop();
  } finally { process.exit(0); }
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
