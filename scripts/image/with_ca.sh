#!/usr/bin/env bash
# Docker image step wrapper: runs COMMAND with the build secret `ca` (a CA bundle, mounted at
# /run/secrets/ca by `RUN --mount=type=secret,id=ca`; IMAGE_CA_SECRET names another path) as pip's
# and curl's CA bundle, if given.
#   scripts/image/with_ca.sh COMMAND [ARG...]
# The variables live in this step's processes only: nothing is stored in the image.
set -euo pipefail
ca="${IMAGE_CA_SECRET:-/run/secrets/ca}"
if [[ -s "$ca" ]]; then
  export PIP_CERT="$ca" SSL_CERT_FILE="$ca" CURL_CA_BUNDLE="$ca" REQUESTS_CA_BUNDLE="$ca"
  echo "with_ca: CA bundle from the build secret 'ca'"
fi
exec "$@"
