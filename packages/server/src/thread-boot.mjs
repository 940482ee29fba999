// Worker threads start here. Node strips TypeScript types as it loads the
// engine and plugin sources, in a worker as on the main thread.
await import('./thread-main.ts');
