# Stand-in for prom/prometheus:v2.42.0, built by scripts/compose_test.sh only where Docker Hub cannot
# be reached: Debian bookworm + Debian's prometheus package (2.42.0, the version the tag names), with
# what compose.yaml uses of the official image: `prometheus` as the entrypoint (compose.yaml passes
# its flags), `promtool` on PATH (the healthcheck), /prometheus for the data, user nobody.
FROM devicestream-standin/debian:bookworm
COPY certs/ /usr/local/share/ca-certificates/
RUN update-ca-certificates \
 && apt-get update \
 && apt-get install -y --no-install-recommends prometheus \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /prometheus /etc/prometheus \
 && chown nobody:nogroup /prometheus /etc/prometheus
USER nobody
WORKDIR /prometheus
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
