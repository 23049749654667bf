// Builds the web view into ../wsh/web/static (app.js, app.css, index.html),
// which ships in the Python package; `--tests` builds test/*.test.ts for
// node --test into .test-build/ instead; `--out DIR` writes the app elsewhere
// (tests/web/test_build.py rebuilds there and compares with the committed
// files). Same sources, same pinned esbuild: the same bytes.
import { build } from "esbuild";
import { copyFile, mkdir, readdir, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const outIndex = args.indexOf("--out");

if (args.includes("--tests")) {
  const dir = join(here, "test");
  const entries = (await readdir(dir)).filter((f) => f.endsWith(".test.ts")).map((f) => join(dir, f));
  const outdir = join(here, ".test-build");
  await rm(outdir, { recursive: true, force: true });
  await build({
    entryPoints: entries,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    outdir,
    outExtension: { ".js": ".mjs" },
    external: ["node:*"],
    logLevel: "warning",
  });
} else {
  const outdir = outIndex >= 0 ? args[outIndex + 1] : join(here, "..", "wsh", "web", "static");
  await mkdir(outdir, { recursive: true });
  await build({
    entryPoints: { app: join(here, "src", "main.ts") },
    bundle: true,
    minify: true,
    format: "esm",
    target: "es2022",
    outdir,
    legalComments: "eof",
    logLevel: "warning",
  });
  await build({
    entryPoints: { app: join(here, "src", "style.css") },
    bundle: true,
    minify: true,
    outdir,
    logLevel: "warning",
  });
  await copyFile(join(here, "src", "index.html"), join(outdir, "index.html"));
}
