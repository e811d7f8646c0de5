// Builds the page into dist/ (served by the gateway at / and /docs, assets under /assets/):
// the TypeScript bundled by esbuild, the two HTML pages, and swagger-ui-dist's files, so the
// browser loads nothing from anywhere but the gateway.
import { cpSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "dist");
const swagger = join(here, "node_modules", "swagger-ui-dist");

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, "assets", "swagger-ui"), { recursive: true });

await esbuild.build({
  entryPoints: { app: join(here, "src", "main.ts"), docs: join(here, "src", "docs.ts") },
  outdir: join(out, "assets"),
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  sourcemap: true,
  logLevel: "warning",
});
for (const page of ["index.html", "docs.html"]) cpSync(join(here, page), join(out, page));
for (const file of ["swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "LICENSE", "NOTICE"]) {
  cpSync(join(swagger, file), join(out, "assets", "swagger-ui", file));
}
console.log(`[web] built ${out}`);
