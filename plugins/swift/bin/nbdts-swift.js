#!/usr/bin/env node
// nbdts-swift: manage swiftnbd-format disks in Swift (swiftnbd-ctl parity).
// Runs from TypeScript source (Node strips the types), like the nbdts command.
const { main } = await import('../src/ctl/main.ts');
process.exit(await main(process.argv.slice(2)));
