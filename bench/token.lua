-- wrk script: client_credentials at /token, round-robin over the clients given as arguments
-- (each argument is a ready "Basic ..." Authorization value), plus report.lua's summary line.
local auths = {}
local next_client = 0

init = function(args)
  for i, a in ipairs(args) do auths[i] = a end
end

request = function()
  next_client = next_client % #auths + 1
  return wrk.format("POST", "/token", {
    ["Authorization"] = auths[next_client],
    ["Content-Type"] = "application/x-www-form-urlencoded",
  }, "grant_type=client_credentials")
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d errors=%d p50_us=%d p99_us=%d mean_us=%.1f\n",
    summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout + e.status,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
