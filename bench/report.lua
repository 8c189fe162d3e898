-- Appended to every scenario: prints the figures the bench runner reads.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT rps=%.1f requests=%d errors=%d p50_ms=%.2f p99_ms=%.2f\n",
    summary.requests / (summary.duration / 1e6), summary.requests,
    e.status + e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
