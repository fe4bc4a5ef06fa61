#!/usr/bin/env bash
# Debian packages the docker:// tests and the registry bench need: a real registry
# (docker-registry, distribution 2.8), the conformance oracle (skopeo) and openssl for the test
# CA. bcrypt hashes for htpasswd come from Perl's crypt() through libxcrypt (perl-base and
# libcrypt1 are essential packages), or from apache2-utils' htpasswd when it is installed.
# Idempotent: installs only what is missing, so a machine that has them runs no apt at all.
set -euo pipefail

want=()
command -v docker-registry >/dev/null 2>&1 || want+=(docker-registry)
command -v skopeo >/dev/null 2>&1 || want+=(skopeo)
command -v openssl >/dev/null 2>&1 || want+=(openssl)
command -v perl >/dev/null 2>&1 || command -v htpasswd >/dev/null 2>&1 || want+=(apache2-utils)

if [ "${#want[@]}" -eq 0 ]; then
  echo "registry-deps: docker-registry, skopeo, openssl and a bcrypt hasher are present"
  exit 0
fi

echo "registry-deps: installing ${want[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${want[@]}"
