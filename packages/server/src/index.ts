export type * from './api.ts';
export { createServer } from './server.ts';
export { applyFilters } from './filters.ts';
