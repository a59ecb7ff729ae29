#!/usr/bin/env bash
# deps.sh [PACKAGE...]: installs the Debian 12 packages that are missing: those named, or by
# default what ringfeed needs to build, test and run its demo.
set -euo pipefail
packages=("$@")
[ ${#packages[@]} -gt 0 ] || packages=(build-essential cmake pkg-config liburing-dev libjpeg62-turbo-dev libturbojpeg0-dev
	libstb-dev libinih-dev libpng-dev libcjson-dev libcriterion-dev openmpi-bin libfuse3-dev fuse3
	python3-dev python3-numpy libtesseract-dev tesseract-ocr-eng imagemagick fonts-dejavu-core)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
