#!/usr/bin/env node
// nbdts-swift: manage swiftnbd-format disks in Swift (swiftnbd-ctl parity).
// Runs from TypeScript source through tsx, like the nbdts command.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/ctl/main.ts');
process.exit(await main(process.argv.slice(2)));
