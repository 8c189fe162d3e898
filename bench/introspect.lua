-- POST /v1/introspect with a service key (BENCH_KEY) for one access token
-- (BENCH_TOKEN), as JSON.
wrk.method = "POST"
wrk.body = '{"token":"' .. os.getenv("BENCH_TOKEN") .. '"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY")
