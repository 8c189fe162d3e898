-- Password sign-ins of BENCH_USERS existing users (bench-0@bench.example …),
-- taken in turn, each thread starting at its own share of them, so that no
-- two requests in flight are for the same account: concurrent attempts on one
-- account are claimed one at a time and the losers answered at once, which
-- would measure refusals instead of sign-ins. BENCH_USER_OFFSET shifts the
-- start, for a second wrk beside the first.
local thread_index = 0

function setup(thread)
  thread:set("id", thread_index)
  thread_index = thread_index + 1
end

local users = tonumber(os.getenv("BENCH_USERS") or "1")
local threads = tonumber(os.getenv("WRK_THREADS") or "2")
local counter = 0

function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  counter = tonumber(os.getenv("BENCH_USER_OFFSET") or "0") + (id or 0) * math.floor(users / threads)
end

function request()
  local user = counter % users
  counter = counter + 1
  return wrk.format(nil, nil, nil,
    '{"login":{"type":"email","identifier":"bench-' .. user .. '@bench.example"},"password":"' ..
    os.getenv("BENCH_PASSWORD") .. '"}')
end
