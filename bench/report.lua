-- wrk reporter: one machine-readable line with the numbers bench/loadgen.py reads.
-- Latencies are in microseconds; errors counts socket errors, timeouts and non-2xx/3xx replies.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d errors=%d p50_us=%d p99_us=%d mean_us=%.1f\n",
    summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout + e.status,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
