# syntax=docker/dockerfile:1
# mailgw gateway image. Build: docker build -t mailgw .   (docker-compose.yml builds it for the demo)

# --- build: all dependencies, compile TypeScript to dist/ -----------------------------------------
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# --- production dependencies only -----------------------------------------------------------------
FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force

# --- runtime --------------------------------------------------------------------------------------
FROM node:20-bookworm-slim
# glibc's malloc keeps freed blocks up to 16 MiB instead of returning each 1 MiB download chunk to the
# kernel and faulting it back in for the next one: raw downloads run about twice as fast
# (docs/benchmarks.md, row g; docs/operations.md).
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000 \
    DATA_DIR=/app/data \
    MALLOC_MMAP_THRESHOLD_=16777216 \
    MALLOC_TRIM_THRESHOLD_=134217728
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
# The account file store (used when REDIS_URL is unset) writes under DATA_DIR: the only writable path.
RUN mkdir -p /app/data && chown node:node /app/data
USER node
EXPOSE 3000
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "dist/server.js"]
