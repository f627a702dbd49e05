# syntax=docker/dockerfile:1
# Build a static binary, then ship it alone on a small non-root image.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
    -o /out/natif-uploader ./cmd/natif-uploader

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/natif-uploader /usr/local/bin/natif-uploader
ENV NATIF_INBOX=/data/inbox NATIF_DONE_DIR=/data/done NATIF_FAILED_DIR=/data/failed \
    NATIF_METRICS_ADDR=0.0.0.0:9464
VOLUME ["/data/inbox", "/data/done", "/data/failed"]
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/natif-uploader"]
CMD ["--help"]
