-- POST a fixed JSON body to the URL given on wrk's command line and, when
-- the run ends, print one machine-readable line that bench/rest.py parses:
--   BENCH_RESULT {"requests":...,"duration_us":...,"p50_us":...,...}
-- The body comes from the BENCH_BODY environment variable so one script
-- serves every protocol and payload.
-- Latencies are in microseconds; "status" counts responses with status >= 400
-- (wrk's own definition of a non-2xx/3xx response).

wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY") or error("BENCH_BODY is not set")
wrk.headers["Content-Type"] = "application/json"
-- A bearer token, when the bench protects the service (bench/gateway.py --auth).
local authorization = os.getenv("BENCH_AUTHORIZATION")
if authorization then wrk.headers["Authorization"] = authorization end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"errors_connect":%d,"errors_read":%d,"errors_write":%d,' ..
      '"errors_status":%d,"errors_timeout":%d,' ..
      '"mean_us":%.1f,"max_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency.max,
      latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency:percentile(99.9)))
end
