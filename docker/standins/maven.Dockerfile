# Stand-in for maven:3.9.9-eclipse-temurin-17, built by scripts/compose_test.sh only where Docker Hub
# cannot be reached: Debian bookworm + Debian's Maven and OpenJDK 17 (the JDK the official image
# names; Debian's Maven is 3.8, which runs the same dependency plugin). The host's extra CA
# certificates go into both the system bundle and Java's trust store before Java is installed.
FROM devicestream-standin/debian:bookworm
COPY certs/ /usr/local/share/ca-certificates/
RUN update-ca-certificates \
 && mkdir -p /usr/share/man/man1 \
 && apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jdk-headless ca-certificates-java maven \
 && rm -rf /var/lib/apt/lists/*
CMD ["mvn"]
