#!/usr/bin/env node
// The `wavelet` command. Tracked and executable so npm links it at install time, before any
// build; it runs the built client (server/dist/client/cli.js).
try {
  const { main } = await import("../dist/client/cli.js");
  process.exitCode = await main(process.argv.slice(2));
} catch (error) {
  if (error?.code !== "ERR_MODULE_NOT_FOUND" || !String(error.message).includes("dist/client/cli.js")) throw error;
  process.stderr.write("wavelet: the client is not built yet: run `npm run build` at the repository root\n");
  process.exitCode = 1;
}
