// tsc compiles TypeScript only: copy the static files the build needs (the admin dashboard's page and scripts).
import { cpSync, existsSync } from "node:fs";

const root = new URL("..", import.meta.url).pathname;
const from = `${root}src/admin/assets`;
if (existsSync(from)) cpSync(from, `${root}dist/admin/assets`, { recursive: true });
