-- POST one chat completion per request; used by the proxy benchmark (bench/load.py).
-- Environment: BENCH_MODEL (alias), BENCH_KEY (bearer key, optional), BENCH_STREAM ("1" = SSE).
-- The done hook prints one machine-readable line, parsed by bench/load.py:
--   BENCH requests=… duration_us=… p50_us=… p90_us=… p99_us=… max_us=… errors=… non2xx=…
local model = os.getenv("BENCH_MODEL") or "bench-chat"
local key = os.getenv("BENCH_KEY")
local stream = os.getenv("BENCH_STREAM") == "1"

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
if key and key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end
wrk.body = '{"model":"' .. model .. '","messages":[{"role":"user","content":"Say hello to the benchmark."}],'
  .. '"max_tokens":64' .. (stream and ',"stream":true' or '') .. '}'

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d errors=%d non2xx=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect + e.read + e.write + e.timeout, e.status))
end
