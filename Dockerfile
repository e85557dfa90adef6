# The platform image used by docker-compose.yml. Kafka and MongoDB come from their official images,
# so nothing is provisioned here (KAFKA_BROKERS and MONGODB_URI are set by compose).
#
# Two stages. `build` installs every dependency (esbuild, a dev dependency, bundles the sources) and
# builds dist/distributary.mjs (cli/build.mjs). The runtime stage holds only what runs: the bundle, the
# files the platform reads at run time (found from the project root, common/paths.ts) and the production
# dependencies (npm ci --omit=dev): no compiler, bundler, test tool or registry client of the tests.
# No install script runs in either stage (--ignore-scripts): none is needed (esbuild finds its binary
# in its platform package, protobufjs' only warns), and swagger-ui-dist's dependency @scarf/scarf would
# send install analytics (package.json also opts out: scarfSettings). test/unit/docker-image.test.ts
# checks all of this, and that the bundle imports production dependencies only.
ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY . .
RUN node cli/build.mjs

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY schemas/avro ./schemas/avro
COPY schemas/released ./schemas/released
COPY consumers/rest/mapping-sandbox-process.cjs ./consumers/rest/mapping-sandbox-process.cjs
# the web console's stylesheet (htmx comes from the htmx.org package, a production dependency)
COPY console/assets ./console/assets
# CSV drop folders (one per publisher, <SOURCES_DROP_ROOT>/<publisher id>/), writable by the platform's user;
# docker-compose.yml mounts a volume here (the image's /app is root's: the default .stack/drop is not writable)
RUN mkdir -p /var/lib/distributary/drop && chown node:node /var/lib/distributary/drop
ENV SOURCES_DROP_ROOT=/var/lib/distributary/drop
USER node
EXPOSE 8080 8081
# Liveness: GET /health answers while the process serves HTTP (GET /ready also asks Kafka and the store;
# an outage of theirs is no reason to replace this container). With node: the slim image has no curl.
# A container started with `start --role worker` serves no HTTP: disable the check there.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.HTTP_PORT || 8080) + '/health', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "--enable-source-maps", "dist/distributary.mjs", "start"]
