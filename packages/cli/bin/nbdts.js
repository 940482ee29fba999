#!/usr/bin/env node
// nbdts runs from its TypeScript sources, as user plugins given as
// ./plugin.ts do: Node (>= 24) strips the types as it loads them.
// A reader that goes away (nbdts ... | head -1) must not crash the server.
process.stdout.on('error', (err) => {
  if (err.code !== 'EPIPE') throw err;
});
const { main } = await import('../src/main.ts');
const status = await main(process.argv.slice(2));
// Exit explicitly: stdin (with -s) or a plugin's timers may keep the loop alive.
process.exit(status);
