# Stand-in for python:3.11.13-slim-bookworm, built by scripts/compose_test.sh only where Docker Hub
# cannot be reached: Debian bookworm (from Debian's packages with mmdebstrap) + Debian's Python 3.11,
# venv and `python` on PATH, as the official image offers them. The host's extra CA certificates are
# trusted (a TLS-inspecting egress proxy would otherwise break pip and apt-get in the builds).
FROM devicestream-standin/debian:bookworm
COPY certs/ /usr/local/share/ca-certificates/
RUN update-ca-certificates \
 && apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3-venv python-is-python3 \
 && rm -rf /var/lib/apt/lists/* \
 && printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > /etc/pip.conf
ENV LANG=C.UTF-8
CMD ["python3"]
