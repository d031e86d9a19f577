// Copies the browser builds of Preact, its hooks and htm (with their licences) into www/vendor/.
// Run after `npm install`: `npm run vendor`.
import { copyFileSync, mkdirSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const mods = join(root, 'node_modules');
const out = join(root, 'www', 'vendor');

const files = [
  ['preact/dist/preact.mjs', 'preact.mjs'],
  ['preact/hooks/dist/hooks.mjs', 'hooks.mjs'],
  ['preact/LICENSE', 'preact.LICENSE'],
  ['htm/dist/htm.module.js', 'htm.module.js'],
  ['htm/LICENSE', 'htm.LICENSE'],
];

mkdirSync(out, { recursive: true });
for (const [from, to] of files) {
  const src = join(mods, from);
  if (!existsSync(src)) {
    console.error(`missing ${src}: run npm install first`);
    process.exit(1);
  }
  copyFileSync(src, join(out, to));
  console.log(`${from} -> www/vendor/${to}`);
}
