# The adapter's HTTP server (Beast): included from adapter/CMakeLists.txt. Asio and Beast
# stay private to src/http_server.cpp; the public header includes neither.
target_sources(adapter PRIVATE src/http_server.cpp)
target_link_libraries(adapter PRIVATE base_asio)

clearing_add_test(NAME adapter_http_server_test SOURCES tests/http_server_test.cpp LIBS adapter)
