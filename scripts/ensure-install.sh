#!/usr/bin/env bash
# Installs dependencies from the lockfile when node_modules is missing or stale.
# Works from a fresh clone with only Node 20 and npm: pnpm comes through npx.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(node -p "require('./package.json').packageManager.split('@')[1]")
if command -v pnpm >/dev/null 2>&1 && [ "$(pnpm --version 2>/dev/null)" = "$version" ]; then
  pnpm=(pnpm)
else
  pnpm=(npx --yes "pnpm@$version")
fi
if [ ! -f node_modules/.modules.yaml ] || [ pnpm-lock.yaml -nt node_modules/.modules.yaml ]; then
  "${pnpm[@]}" install --frozen-lockfile --reporter=append-only
fi
