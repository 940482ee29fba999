#!/usr/bin/env node
// Register tsx's ESM loader first: nbdts runs from TypeScript source, and so
// can user plugins given as ./plugin.ts.
import { register } from 'tsx/esm/api';

register();
// A reader that goes away (nbdts ... | head -1) must not crash the server.
process.stdout.on('error', (err) => { if (err.code !== 'EPIPE') throw err; });
const { main } = await import('../src/main.ts');
const status = await main(process.argv.slice(2));
// Exit explicitly: stdin (with -s) or a plugin's timers may keep the loop alive.
process.exit(status);
