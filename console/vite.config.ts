import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// The build lands inside ferry-node, which embeds it in the binary (crates/ferry-node/src/console.rs).
// Relative asset paths and no code splitting keep the embedded file list small and stable.
export default defineConfig({
  plugins: [react()],
  base: "./",
  build: {
    outDir: "../crates/ferry-node/console-dist",
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
    chunkSizeWarningLimit: 2000,
  },
  server: {
    // `npm run dev` against a node on the default API address.
    proxy: { "/api": "http://127.0.0.1:8700" },
  },
});
