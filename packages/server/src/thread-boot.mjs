// Worker threads start here: the engine and plugins are TypeScript run from
// source, and a worker does not inherit the main thread's loader hooks.
import { register } from 'tsx/esm/api';

register();
await import('./thread-main.ts');
