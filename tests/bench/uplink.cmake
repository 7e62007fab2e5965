# uplink_bench: the durable uplink (docs/performance.md, "Durable uplink"): durable ingest into the SQLite queue with
# this disk's fsync latency beside it, alarm latency end to end (firelink-receiver as a child process) while a
# telemetry backlog drains, and a restart with that backlog (open time, peak RSS in a fresh child). Full run, manual,
# in a Release tree, with the queue files on a real disk (not tmpfs):
#   <build>/bin/uplink_bench --ingest-events 500000 --backlog 1000000 --alarms 200 --dir /var/tmp
# The smoke run uses tiny sizes and only proves it works: it fails on a lost event or a wrong count, never on speed.
add_executable(uplink_bench ${CMAKE_CURRENT_LIST_DIR}/uplink_bench.cpp)
target_link_libraries(uplink_bench PRIVATE firelink::uplink firelink::sdk SQLiteCpp msgpackc-cxx spdlog::spdlog
  CLI11::CLI11)
target_compile_definitions(uplink_bench PRIVATE FIRELINK_BUILD_TYPE="${_bench_build_type}"
  FIRELINK_RECEIVER_PATH="$<TARGET_FILE:firelink-receiver>")
add_dependencies(uplink_bench firelink-receiver)
add_test(NAME bench.uplink_smoke
         COMMAND uplink_bench --ingest-events 2000 --backlog 5000 --alarms 5 --alarm-min-ms 5 --alarm-max-ms 10
                 --fsync-iterations 20 --dir ${CMAKE_CURRENT_BINARY_DIR})
set_tests_properties(bench.uplink_smoke PROPERTIES TIMEOUT 120 LABELS bench)
