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
# The volume folders exist in the image, owned by the non-root user, so that
# fresh named volumes inherit an owner the daemon can write as.
RUN mkdir -p /out/data/inbox /out/data/done /out/data/failed

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/natif-uploader /usr/local/bin/natif-uploader
COPY --from=build --chown=65532:65532 /out/data /data
ENV NATIF_INBOX=/data/inbox NATIF_DONE_DIR=/data/done NATIF_FAILED_DIR=/data/failed \
    NATIF_METRICS_ADDR=0.0.0.0:9464
VOLUME ["/data/inbox", "/data/done", "/data/failed"]
USER nonroot:nonroot
EXPOSE 9464
# The image has no shell and no curl: the binary asks its own /healthz.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/natif-uploader", "healthcheck"]
# SIGTERM stops the watcher, gives in-flight uploads NATIF_SHUTDOWN_TIMEOUT
# (30 s by default) and requeues the rest; give docker stop a little longer.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/natif-uploader"]
CMD ["run"]
