#!/usr/bin/env bash
# Builds build/wsh-client offline from Debian's Go packages (GOPATH mode):
# generates the Go code of protos/wsh/v1 into build/gopath, then compiles.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
protos="$here/../../protos"
out="$here/build"
export GO111MODULE=off
export GOPATH="$out/gopath:/usr/share/gocode"
rm -rf "$out/gopath"
mkdir -p "$out/gopath/src"
# go_package in the protos puts the code at wsh.dev/api/wsh/v1 under src/.
protoc -I "$protos" --go_out="$out/gopath/src" --go-grpc_out="$out/gopath/src" \
  "$protos"/wsh/v1/*.proto
cd "$here"
go build -o "$out/wsh-client" .
