-- Registrations of fresh e-mail addresses, unique per thread and request.
local counter = 0
local thread_index = 0

function setup(thread)
  thread:set("id", thread_index)
  thread_index = thread_index + 1
end

function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local email = string.format("signup-%d-%d-%d@bench.example", os.time(), id, counter)
  return wrk.format(nil, "/v1/registrations", nil,
    '{"login":{"type":"email","identifier":"' .. email .. '"},"password":"' .. os.getenv("BENCH_PASSWORD") .. '"}')
end
