# syntax=docker/dockerfile:1
# The base images are build arguments so the same file builds on a registry (the defaults, the
# official Node 20 images) and offline (`npm run image` passes locally built Debian + Node bases).
ARG BUILD_IMAGE=node:20-bookworm
ARG RUNTIME_IMAGE=node:20-bookworm-slim

# Build stage: the compiler toolchain for the N-API addon, TypeScript, dev dependencies.
FROM ${BUILD_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json binding.gyp ./
COPY native ./native
COPY scripts ./scripts
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npx tsc -p tsconfig.build.json && npm prune --omit=dev \
 && mkdir -p /out/addons && cp build/Release/*.node /out/addons/

# Runtime stage: production dependencies, compiled JS, the addon, iptables/nftables for the
# capture rules the node agent stand-in and `redirect` write.
FROM ${RUNTIME_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables nftables iproute2 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY --from=build /out/addons/ ./build/Release/
COPY proto ./proto
COPY examples ./examples
# Non-root by default (dev CA, dev control plane, waypoint, explicit/SOCKS5 node proxy). The
# node DaemonSet runs it as uid 0 with NET_ADMIN, SYS_ADMIN and NET_RAW only: entering pod
# network namespaces (setns), SO_MARK/IP_TRANSPARENT and the capture rules need them.
USER 1337:1337
EXPOSE 15001 15006 15008 15012 15020 15021
ENTRYPOINT ["node", "/app/dist/src/cli/main.js"]
CMD ["node"]
