export type * from './api.ts';
export { createServer } from './server.ts';
export { openStack, type OpenStack, type OpenStackOptions } from './stack.ts';
export type { Capabilities } from './backend.ts';
