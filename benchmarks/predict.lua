-- wrk script: POST canvas PNGs (BENCH_PNG_DIR/000.png ... , BENCH_PNG_COUNT of them) to
-- /api/predict in turn, and print one machine-readable summary line at the end.
local dir = os.getenv("BENCH_PNG_DIR")
local count = tonumber(os.getenv("BENCH_PNG_COUNT") or "100")
local bodies = {}
for i = 1, count do
  local f = assert(io.open(string.format("%s/%03d.png", dir, i - 1), "rb"))
  bodies[i] = f:read("*all")
  f:close()
end
local n = 0

request = function()
  n = n + 1
  return wrk.format("POST", "/api/predict", { ["Content-Type"] = "image/png" },
    bodies[(n % count) + 1])
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d errors=%d seconds=%.3f rps=%.1f p50_ms=%.3f p99_ms=%.3f\n",
    summary.requests, e.connect + e.read + e.write + e.status + e.timeout,
    summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
