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
# The specstream CLI runs its build (dist/), which starts faster than the sources through tsx:
# rebuild when any package's sources are newer than its last build (a no-op build costs ~0.2 s,
# this check ~10 ms). A failed build is reported but not fatal: the CLI then falls back to the
# sources, and `npm test` reports the type errors in its own build step.
for pkg in packages/*/; do
  info="${pkg}dist/.tsbuildinfo"
  if [ ! -f "$info" ] || [ -n "$(find "${pkg}src" "${pkg}package.json" -newer "$info" -print -quit)" ]; then
    node_modules/.bin/tsc -b || echo "ensure-install: build failed (see above); continuing" >&2
    break
  fi
done
