# The pipeline image used by docker-compose.yml. TypeScript runs through tsx (a runtime
# dependency), so there is no build stage: the image holds the sources as in the repo.
FROM node:20-bookworm-slim

ENV NODE_ENV=production
WORKDIR /app

# Dependencies first, so editing sources does not invalidate this layer.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

COPY . .

USER node
EXPOSE 9464
CMD ["node", "bin/paysentinel.mjs", "start"]
