#!/usr/bin/env node
// nbdts-s3: create, upload, download, inspect and delete disks for `nbdts s3`.
// Runs from TypeScript source (Node strips the types), like the nbdts command.
const { main } = await import('../src/ctl/main.ts');
process.exit(await main(process.argv.slice(2)));
