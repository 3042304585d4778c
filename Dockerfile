# syntax=docker/dockerfile:1
# crm — multi-stage build: a static Go binary on a distroless, non-root runtime.
#   docker build -t clubcrm/crm --build-arg VERSION=$(git describe --always --dirty) .

FROM golang:1.26-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-trimpath

# Dependencies first, so source edits don't re-download modules.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -ldflags "-s -w -X main.version=${VERSION}" -o /out/crm ./cmd/crm

# Runtime: no shell, CA certificates and tzdata included, uid/gid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/crm /usr/local/bin/crm
USER nonroot:nonroot
ENV CRM_HTTP_ADDR=:8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/crm"]
CMD ["serve"]
