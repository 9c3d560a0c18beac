# Sourced by the curl walks (`. docs/examples/wait_for.sh`): the marketplace's workflows run after
# the API has answered (202), so a walk waits for the status it expects before it reads the record.
#
# wait_for URL STATUS TOKEN [FIELD]: reads URL with the bearer TOKEN every half second until its
# "status" (or the jq path FIELD: .proposal.status) is STATUS; after 30 seconds it gives up, says
# what it saw, and returns 1.
wait_for() {
  local seen=""
  for _ in $(seq 60); do
    seen=$(curl -s "$1" -H "Authorization: Bearer $3" | jq -r "${4:-.status}")
    [ "$seen" = "$2" ] && return 0
    sleep 0.5
  done
  echo "wait_for: gave up after 30 s waiting for $2 at $1 (status: $seen)" >&2
  return 1
}
