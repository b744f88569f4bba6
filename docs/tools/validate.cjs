// Parse an AsyncAPI document with the AsyncAPI initiative's own parser and
// print every diagnostic; exit 1 when there is any error, 2 when the parser
// cannot run. Usage: node docs/tools/validate.cjs [FILE] (default
// docs/asyncapi.yaml). The parser comes from `make node-tools`.
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const { createRequire } = require("node:module");

const root = path.resolve(__dirname, "..", "..");
const nodeDir = path.join(root, ".local", "node");
const SEVERITY = ["error", "warning", "info", "hint"];

async function main() {
  const file = path.resolve(process.argv[2] || path.join(root, "docs", "asyncapi.yaml"));
  const { Parser } = createRequire(path.join(nodeDir, "package.json"))("@asyncapi/parser");
  const { document, diagnostics } = await new Parser().parse(
    fs.readFileSync(file, "utf8"),
    { source: file },
  );
  for (const d of diagnostics) {
    const where = d.path.length ? d.path.join(".") : "document";
    console.log(`${SEVERITY[d.severity]} ${d.code} at ${where}: ${d.message}`);
  }
  const errors = diagnostics.filter((d) => d.severity === 0).length;
  if (document === undefined || errors > 0) {
    console.error(`${file}: not valid AsyncAPI (${errors} errors)`);
    process.exit(1);
  }
  console.log(
    `${file}: valid AsyncAPI ${document.version()}, ` +
      `${document.channels().length} channels, ` +
      `${document.operations().length} operations, ` +
      `${document.allMessages().length} messages`,
  );
}

main().catch((error) => {
  console.error(`the AsyncAPI parser could not run: ${error.stack || error}`);
  console.error("install it with `make node-tools`");
  process.exit(2);
});
