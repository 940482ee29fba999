/** Serve the test memory plugin on stdin/stdout (like `nbdts -s`), for the serveStream test. */
import { Duplex } from 'node:stream';
import pino from 'pino';
import { createServer } from '../src/index.ts';
import { memPlugin } from './mem-plugin.ts';

const { plugin } = memPlugin({ size: 1024 * 1024, description: 'stdio' });
const server = createServer({ plugin, logger: pino({ level: 'silent' }, pino.destination(2)) });
await server.serveStream(Duplex.from({ readable: process.stdin, writable: process.stdout }));
process.stderr.write('serveStream resolved\n');
process.exit(0);
