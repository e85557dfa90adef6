# The platform image used by docker-compose.yml. Kafka and MongoDB come from their official images,
# so nothing is provisioned here (KAFKA_BROKERS and MONGODB_URI are set by compose).
FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force
COPY . .
# the platform bundle (cli/build.mjs), built once here: the image runs it with plain node
RUN node cli/build.mjs
# CSV drop folders (one per publisher, <SOURCES_DROP_ROOT>/<publisher id>/), writable by the platform's user;
# docker-compose.yml mounts a volume here (the image's /app is root's: the default .stack/drop is not writable)
RUN mkdir -p /var/lib/distributary/drop && chown node:node /var/lib/distributary/drop
ENV SOURCES_DROP_ROOT=/var/lib/distributary/drop
USER node
EXPOSE 8080 8081
CMD ["node", "--enable-source-maps", "dist/distributary.mjs", "start"]
