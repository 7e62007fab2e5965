# GB/T 26875.3 fire panels (docs/performance.md, "Fire panels"): many UITD connections with heartbeats on one
# firelink-host, and fire-alarm latency from frame to confirm (= event accepted) under that load. Full run, manual:
#   <build>/bin/gb26875_bench --connections 10000 --heartbeat-s 30 --alarms 200
add_executable(gb26875_bench ${CMAKE_CURRENT_LIST_DIR}/gb26875_bench.cpp)
target_link_libraries(gb26875_bench PRIVATE firelink::sdk CLI11::CLI11)
target_compile_definitions(gb26875_bench PRIVATE FIRELINK_BUILD_TYPE="${_bench_build_type}"
  FIRELINK_HOST_PATH="$<TARGET_FILE:firelink-host>" FIRELINK_PLUGIN_DIR="${FIRELINK_PLUGIN_OUTPUT_DIRECTORY}")
add_dependencies(gb26875_bench firelink-host fire_panel)
add_test(NAME bench.gb26875_smoke
         COMMAND gb26875_bench --connections 20 --heartbeat-s 1 --alarms 10 --alarm-interval-ms 20 --settle-s 1)
set_tests_properties(bench.gb26875_smoke PROPERTIES TIMEOUT 120 LABELS bench)
