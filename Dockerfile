# b24hooks: build stage (all dependencies, tsc), then a runtime image with the built code,
# production dependencies, views and static assets only. See server/README.md, Operations.
FROM node:20-bookworm-slim AS build
# Toolchain for better-sqlite3 when no prebuilt binary matches (node-gyp fallback).
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json manifest.json ./
COPY server ./server
COPY db ./db
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
ENV NODE_ENV=production PORT=3000 HOST=0.0.0.0 DATA_DIR=/data
WORKDIR /app
COPY --from=build /app/package.json /app/manifest.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/server/bin ./server/bin
COPY views ./views
COPY placement ./placement
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 3000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# `docker exec <container> node server/bin/b24hooks.js status` runs the operator CLI.
CMD ["node", "dist/server/main.js"]
