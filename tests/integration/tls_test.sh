#!/usr/bin/env bash
# TLS and mutual TLS between the CLI, a worker and the coordinator, with certificates made here by openssl
# (a throwaway CA, a server certificate for 127.0.0.1, a client certificate):
#   - TLS: the CLI with --tls-ca lists sweeps; a plaintext client is refused
#   - mTLS (--tls-client-ca): a client with a certificate from the CA gets in, one without does not;
#     a dwarp-worker with its certificate registers
# Usage: tls_test.sh DWARP DWARP_COORDINATOR DWARP_WORKER
set -u
dwarp="$1" coordinator_bin="$2" worker_bin="$3"
command -v openssl > /dev/null || { echo "skipped: openssl not installed"; exit 77; }
dir="$(mktemp -d)"
pids=()
# Coordinators start inside $(...) subshells, so their pids go to a file rather than the array.
cleanup() {
  for pid in "${pids[@]}" $(cat "$dir/pids" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in "$dir"/*.log; do echo "--- $f"; tail -20 "$f"; done; exit 1; }
unset DWARP_COORDINATOR DWARP_TOKEN DWARP_TOKEN_FILE
cd "$dir"

openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=dwarp test CA" 2> openssl.log ||
  fail "cannot make the CA"
for who in server client; do
  openssl req -newkey rsa:2048 -nodes -keyout "$who.key" -out "$who.csr" -subj "/CN=dwarp-$who" 2>> openssl.log
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > "$who.ext"
  openssl x509 -req -in "$who.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -out "$who.pem" -days 2 \
    -extfile "$who.ext" 2>> openssl.log || fail "cannot sign the $who certificate"
done

start_coordinator() {  # NAME EXTRA...
  local name="$1"
  shift
  rm -f "$name.port"
  "$coordinator_bin" --db ":memory:" --listen 127.0.0.1:0 --port-file "$name.port" --tls-cert server.pem \
    --tls-key server.key "$@" > "$name.log" 2>&1 &
  echo $! >> pids
  for _ in $(seq 100); do [ -s "$name.port" ] && break; sleep 0.1; done
  [ -s "$name.port" ] || fail "the $name coordinator did not start"
  echo "127.0.0.1:$(cat "$name.port")"
}

# TLS: the server proves itself; clients need the CA.
address="$(start_coordinator tls)"
"$dwarp" list --coordinator "$address" --tls-ca ca.pem --timeout 10 > list-tls.log 2>&1 || fail "TLS list exited $?"
"$dwarp" list --coordinator "$address" --timeout 5 > list-plain.log 2>&1
[ $? -eq 3 ] || fail "a plaintext client of a TLS coordinator should fail as unreachable (exit 3)"

# mTLS: clients must also present a certificate signed by the CA.
address="$(start_coordinator mtls --tls-client-ca ca.pem)"
"$dwarp" list --coordinator "$address" --tls-ca ca.pem --tls-cert client.pem --tls-key client.key --timeout 10 \
  > list-mtls.log 2>&1 || fail "mTLS list with a client certificate exited $?"
"$dwarp" list --coordinator "$address" --tls-ca ca.pem --timeout 5 > list-nocert.log 2>&1
[ $? -eq 3 ] || fail "a client without a certificate should be refused by an mTLS coordinator (exit 3)"
"$worker_bin" --coordinator "$address" --tls-ca ca.pem --tls-cert client.pem --tls-key client.key \
  --devices cpu --threads 1 --name tls-worker > worker.log 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  "$dwarp" workers --coordinator "$address" --tls-ca ca.pem --tls-cert client.pem --tls-key client.key \
    > workers.log 2>&1 && grep -q tls-worker workers.log && break
  sleep 0.2
done
grep -q tls-worker workers.log || fail "the worker did not register over mTLS"
echo "ok: TLS and mTLS for the CLI and a worker; plaintext and certificate-less clients refused"
