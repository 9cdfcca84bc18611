function envoy_on_request(request_handle)
  local headers = request_handle:headers()
  local prefix = "x-"
  local to_remove = {}
  for key, value in pairs(headers) do
    if ((key:find(prefix, 1, true) == 1) and (key ~= "x-forwarded-for") and (key ~= "x-envoy-internal") and (key ~= "x-amzn-trace-id") and (key ~= "x-forwarded-port") and (key ~= "x-forwarded-proto") and (key ~= "x-request-id")) then
      table.insert(to_remove, key)
    end
  end
  for _, value in pairs(to_remove) do
    request_handle:logInfo("removing header:"..value)
    headers:remove(value)
  end                    
end
