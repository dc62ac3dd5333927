#!/usr/bin/env bash
# The build the Dockerfile runs, and test/container.test.ts runs outside Docker: install from the lockfile
# (better-sqlite3 compiles from source), compile, then drop the dev dependencies for the runtime image.
set -euo pipefail
npm ci --no-audit --no-fund
npm run build
npm prune --omit=dev --no-audit --no-fund
