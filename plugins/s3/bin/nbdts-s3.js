#!/usr/bin/env node
// nbdts-s3: create, upload, download, inspect and delete disks for `nbdts s3`.
// Runs from TypeScript source through tsx, like the nbdts command.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/ctl/main.ts');
process.exit(await main(process.argv.slice(2)));
