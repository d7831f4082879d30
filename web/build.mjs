// SPDX-License-Identifier: MIT
// Builds the explorer into OUTDIR (default web/dist): index.html, assets/app.js (the app and
// MQTT.js bundled, minified, ES module), assets/app.css and assets/icon.svg. The CMake build
// runs this and embeds the output into ternd (src/broker/http_static.c); nothing is fetched at
// run time.
//   node build.mjs [OUTDIR]
import { build } from 'esbuild';
import { copyFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.resolve(process.argv[2] || path.join(here, 'dist'));

await mkdir(path.join(out, 'assets'), { recursive: true });
await build({
  entryPoints: {
    app: path.join(here, 'src', 'main.js'),
  },
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2020'],
  minify: true,
  legalComments: 'linked',
  outdir: path.join(out, 'assets'),
  logLevel: 'warning',
});
await build({
  entryPoints: { app: path.join(here, 'src', 'style.css') },
  bundle: true,
  minify: true,
  outdir: path.join(out, 'assets'),
  logLevel: 'warning',
});
await copyFile(path.join(here, 'index.html'), path.join(out, 'index.html'));
await copyFile(path.join(here, 'icon.svg'), path.join(out, 'assets', 'icon.svg'));
