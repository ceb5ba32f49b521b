import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**", "coverage/**", "test-output/**", "scratch/**", "src/admin/assets/vendor/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: "readonly", console: "readonly", setTimeout: "readonly", clearTimeout: "readonly",
        setInterval: "readonly", clearInterval: "readonly", setImmediate: "readonly", Buffer: "readonly",
        performance: "readonly", URL: "readonly", AbortController: "readonly", AbortSignal: "readonly",
        queueMicrotask: "readonly", structuredClone: "readonly", fetch: "readonly", TextEncoder: "readonly",
        TextDecoder: "readonly", document: "readonly", window: "readonly",
      },
    },
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/no-non-null-assertion": "off",
      // Time comes from the injected Clock; see src/core/clock.ts.
      "no-restricted-properties": [
        "error",
        { object: "Date", property: "now", message: "Use the injected Clock (src/core/clock.ts)." },
        { object: "performance", property: "now", message: "Use the injected Clock (src/core/clock.ts)." },
      ],
    },
  },
  {
    files: ["src/core/clock.ts", "bench/**", "test/**", "scripts/**"],
    rules: { "no-restricted-properties": "off" },
  },
);
