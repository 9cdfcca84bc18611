function envoy_on_request(request_handle)
  local meta = request_handle:streamInfo():dynamicMetadata()
  for key, value in pairs(meta) do
    if(key == "envoy.filters.http.jwt_authn" and value.jwt_payload.scp ~= nil) then
      for _, value1 in pairs(value.jwt_payload.scp) do
        request_handle:headers():add("x-jwt-scope-" .. value1, "true")
      end
      break
    end
  end
end
