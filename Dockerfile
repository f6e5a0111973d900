# syntax=docker/dockerfile:1
# Build stage: the compiler toolchain for the N-API capture addon, TypeScript, dev dependencies.
FROM node:20-bookworm AS build
WORKDIR /app
COPY package.json package-lock.json binding.gyp ./
COPY native ./native
COPY scripts ./scripts
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npx tsc -p tsconfig.build.json && npm prune --omit=dev

# Runtime stage: production dependencies, compiled JS, the addon, iptables for `redirect`.
FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables iproute2 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY --from=build /app/build/Release/ztunnel_capture.node ./build/Release/ztunnel_capture.node
COPY proto ./proto
# Non-root by default (dev CA, explicit/SOCKS5 node proxy). Transparent capture needs
# CAP_NET_ADMIN (SO_MARK, IP_TRANSPARENT, iptables) and CAP_NET_RAW; the DaemonSet
# manifest grants exactly those and runs as uid 0 inside the pod for that reason.
USER 1337:1337
EXPOSE 15001 15006 15008 15012 15020 15021
ENTRYPOINT ["node", "/app/dist/src/cli/main.js"]
CMD ["node"]
