#!/bin/sh
# A failover smoke test against ipmove's OVH emulator, as a CI job runs it: the
# real keepalived hook moves the IP, a fault injected while the emulator runs
# makes the next failover fail as the API would, and the final state is asserted.
#   EMULATOR_DIR  where `ipmove emulate ovh --dir` wrote env.sh and ca.pem
#   IPMOVE_HOOK   the hook under test (ipmove's contrib/keepalived/ipmove-keepalived)
set -eu
. "$EMULATOR_DIR/env.sh"        # OVH_*, NODE_EXTRA_CA_CERTS, IPMOVE_EMULATOR_URL
export IPMOVE_CONFIG=/dev/null  # this job's settings only, whatever /etc/ipmove holds
ip=203.0.113.10 project=t18s

holder() { ipmove status --project "$project" --ip "$ip" --json | grep -o '"holder":{[^}]*}'; }

# 1. keepalived makes node B master: its notify_master hook moves the IP there.
"$IPMOVE_HOOK" master "$ip" eth0 --project "$project" --instance bi-edge-sbg-2
holder | grep -q '"name":"bi-edge-sbg-2"'

# 2. The API breaks (every attach answers 503): failing back must fail cleanly, exit 8.
ipmove emulate control fault "path=/cloud/project/*/ip/failover/*/attach,status=503,times=0" >/dev/null
rc=0
"$IPMOVE_HOOK" master "$ip" eth0 --project "$project" --instance bi-edge-sbg-1 --timeout 30 || rc=$?
[ "$rc" -eq 8 ] || { echo "expected exit 8 (API unreachable), got $rc" >&2; exit 1; }
holder | grep -q '"name":"bi-edge-sbg-2"'   # nothing moved

# 3. The API recovers: the next failover goes through.
ipmove emulate control clear-faults >/dev/null
"$IPMOVE_HOOK" master "$ip" eth0 --project "$project" --instance bi-edge-sbg-1
holder | grep -q '"name":"bi-edge-sbg-1"'
echo "failover smoke test passed"
