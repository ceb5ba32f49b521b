import js from "@eslint/js";
import tseslint from "typescript-eslint";
import importX, { createNodeResolver } from "eslint-plugin-import-x";

/**
 * Layers of src/ (docs/architecture.md, "Layers"): each folder and the
 * folders it may import. Anything not listed is refused by
 * import-x/no-restricted-paths, so an upward or sideways import fails
 * `npm run lint`. Import cycles between files are refused by
 * test/architecture/import-cycles.test.ts.
 */
/**
 * Each feature is one folder under src/features (its library part, its
 * gateway adapter and its config section). A feature may import the engine,
 * net and the config primitives, never the gateway, another feature or
 * anything above: where it needs a piece of the gateway it declares the
 * shape it uses and the gateway hands the real object in.
 */
export const FEATURE_NAMES = ["bandwidth", "probe-resistance", "permissions", "http", "udp"];
const FEATURES = FEATURE_NAMES.map((f) => `features/${f}`);
const ENGINE = ["limiter", "stores", "algorithms", "core"];
const FEATURE_MAY = [...ENGINE, "net", "config"];
export const LAYERS = {
  core: [],
  algorithms: ["core"],
  stores: ["algorithms", "core"],
  limiter: ["stores", "algorithms", "core"],
  net: ["core"],
  config: ["core"],
  ...Object.fromEntries(FEATURES.map((f) => [f, FEATURE_MAY])),
  gateway: [...FEATURES, ...ENGINE, "net", "config"],
  metrics: ["gateway", ...FEATURES, ...ENGINE, "net", "config"],
  // The gateway's connection guard and event lines on an application's own servers.
  "server-guard": ["gateway", ...ENGINE, "net", "config"],
  admin: ["metrics", "gateway", ...FEATURES, ...ENGINE, "net", "config"],
  cli: ["admin", "metrics", "gateway", ...FEATURES, ...ENGINE, "net", "config"],
};
/** The package's entry modules: they compose layers, and nothing in src/ imports them. */
export const ENTRIES = {
  // `import "portcullis"`: the engine and the memory store only (no gateway dependency is loaded).
  "src/index.ts": { may: ["limiter", "stores", "algorithms", "core", "net"], never: ["src/stores/redis"] },
  "src/redis.ts": { may: ["features/bandwidth", ...ENGINE], never: [] },
  "src/message.ts": { may: ENGINE, never: ["src/stores/redis"] },
  "src/gateway/index.ts": { may: ["admin", "metrics", "gateway", ...FEATURES, ...ENGINE, "net", "config"], never: [] },
};

const resolver = createNodeResolver({ extensionAlias: { ".js": [".ts", ".js"] } });
const base = import.meta.dirname;

function restrict(name, may, extra = []) {
  const from = [
    ...Object.keys(LAYERS).filter((l) => l !== name && !may.includes(l)).map((l) => `src/${l}`),
    ...Object.keys(ENTRIES),
    ...extra,
  ];
  const allowed = may.length === 0 ? "nothing else in src/" : may.join(", ");
  const message = `${name} may import only ${allowed} (layers: docs/architecture.md).`;
  return { "import-x/no-restricted-paths": ["error", { basePath: base, zones: [{ target: ".", from, message }] }] };
}

const layerBlocks = [
  ...Object.entries(LAYERS).map(([name, may]) => ({
    files: [`src/${name}/**/*.ts`],
    ignores: Object.keys(ENTRIES),
    rules: restrict(name, may),
  })),
  ...Object.entries(ENTRIES).map(([file, { may, never }]) => ({
    files: [file],
    rules: restrict(file, may, never),
  })),
];

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
  {
    files: ["src/**/*.ts"],
    plugins: { "import-x": importX },
    settings: { "import-x/resolver-next": [resolver] },
  },
  ...layerBlocks,
);
