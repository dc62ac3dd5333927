# syntax=docker/dockerfile:1
# Build stage: compilers for better-sqlite3's native addon, the TypeScript build, then dev deps pruned.
FROM node:20-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
COPY scripts ./scripts
COPY src ./src
COPY workers ./workers
RUN ./scripts/container-build.sh

# Runtime stage: production node_modules (with the compiled addon) and dist only, as the non-root user.
FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    DB_PATH=/data/aggregator.db
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/scripts/healthcheck.js ./scripts/healthcheck.js
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["node", "scripts/healthcheck.js"]
# SIGTERM from `docker stop` drains the queue and commits before exit.
STOPSIGNAL SIGTERM
CMD ["node", "dist/src/main.js"]
