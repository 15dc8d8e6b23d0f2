#!/usr/bin/env bash
# Debian packages the tests need: docker-compose (validates the compose file) and redis-server.
set -euo pipefail
needed=()
command -v docker-compose >/dev/null || needed+=(docker-compose)
command -v redis-server >/dev/null || needed+=(redis-server)
[ ${#needed[@]} -eq 0 ] && exit 0
sudo_cmd=()
[ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
if ! "${sudo_cmd[@]}" apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${needed[@]}" >/dev/null; then
  "${sudo_cmd[@]}" apt-get -o DPkg::Lock::Timeout=600 update -qq
  "${sudo_cmd[@]}" apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${needed[@]}" >/dev/null
fi
