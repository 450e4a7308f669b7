#!/usr/bin/env node
// Runs the TypeScript sources through tsx's loader so that `node bin/secventory.js` works right
// after `npm ci`, with no build step that could go stale.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli.ts');
