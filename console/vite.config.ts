/// <reference types="vitest/config" />
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// The API paths the dev server forwards to a running embedded server
// (`sluice server start --port 4711`); the built console is served by Sluice itself.
const API_PREFIXES = ["/flow-runs", "/deployments", "/pools", "/stats", "/health", "/openapi.json"];
// (Read through globalThis so the browser-only type set needs no Node types.)
const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env ?? {};
const apiTarget = env.SLUICE_API ?? "http://127.0.0.1:4711";

export default defineConfig({
  base: "/ui/",
  plugins: [react()],
  build: {
    outDir: "../sdk/sluice/console_assets",
    emptyOutDir: true,
    // A strict CSP forbids inline scripts: keep every asset a file.
    assetsInlineLimit: 0,
    sourcemap: false,
  },
  server: {
    proxy: Object.fromEntries(API_PREFIXES.map((prefix) => [prefix, { target: apiTarget }])),
  },
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
});
