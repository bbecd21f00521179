-- wrk reporter: one machine-readable line with the numbers bench/loadgen.py reads.
-- Latencies are in microseconds; errors counts socket errors, timeouts, 4xx/5xx replies and
-- 2xx/3xx replies a scenario script judged wrong (its thread global `bench_bad`). `counted` sums the
-- scenario's thread global `bench_counted` (e.g. completed flows), -1 when the script has none.
-- With BENCH_PACE_MS set, every request waits a random 0-2x that many milliseconds first
-- (wrk's `delay` hook): each connection sends at about 1000 / (pace + latency) requests a
-- second, without the lockstep of a fixed delay. Latency is timed from the send.
local threads = {}
local pace = tonumber(os.getenv("BENCH_PACE_MS") or "")
if pace and pace > 0 then
  delay = function() return math.floor(pace * 2 * math.random() + 0.5) end
end

setup = function(thread)
  threads[#threads + 1] = thread
end

done = function(summary, latency, requests)
  local e = summary.errors
  local counted, bad = -1, 0
  for _, thread in ipairs(threads) do
    local n = thread:get("bench_counted")
    if n then counted = math.max(counted, 0) + n end
    bad = bad + (thread:get("bench_bad") or 0)
  end
  io.write(string.format(
    "BENCH requests=%d duration_us=%d errors=%d p50_us=%d p99_us=%d mean_us=%.1f counted=%d\n",
    summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout + e.status + bad,
    latency:percentile(50), latency:percentile(99), latency.mean, counted))
end
