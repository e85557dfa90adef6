# The platform image used by docker-compose.yml. Kafka and MongoDB come from their official images,
# so nothing is provisioned here (KAFKA_BROKERS and MONGODB_URI are set by compose).
FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force
COPY . .
# the platform bundle (cli/build.mjs), built once here: the image runs it with plain node
RUN node cli/build.mjs
USER node
EXPOSE 8080 8081
CMD ["node", "--enable-source-maps", "dist/distributary.mjs", "start"]
