# The payments-stub image for the kind platform. The binary is built on the host first
# (cargo build --release --workspace --bins); build from the repository root:
#   docker build -f kind-config/payments-stub.Dockerfile -t brownout/payments-stub:dev .
# BASE must have a glibc at least as new as the build host's (bookworm: 2.36).
ARG BASE=debian:bookworm-slim
FROM ${BASE}
COPY target/release/payments-stub /usr/local/bin/payments-stub
# The disk-full fault execs this in the pod (harness/src/bin/fill-volume.rs).
COPY target/release/fill-volume /usr/local/bin/fill-volume
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/payments-stub"]
