-- Password sign-in of one existing user, over and over.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"login":{"type":"email","identifier":"' .. os.getenv("BENCH_EMAIL") ..
  '"},"password":"' .. os.getenv("BENCH_PASSWORD") .. '"}'
