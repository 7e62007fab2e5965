# modbus_bench: polls/s of one RS-485 bus of 32 Modbus devices at 9600 and 115200 baud, in simulated time, with
# every frame built and decoded by the SDK codec (docs/performance.md). The smoke run only proves it still works.
add_executable(modbus_bench ${CMAKE_CURRENT_LIST_DIR}/modbus_bench.cpp)
target_link_libraries(modbus_bench PRIVATE firelink::sdk firelink::modbus_maps CLI11::CLI11)
target_compile_definitions(modbus_bench PRIVATE FIRELINK_BUILD_TYPE="${_bench_build_type}")
add_test(NAME bench.modbus_smoke COMMAND modbus_bench --devices 4 --cycles 3 --dead 1)
set_tests_properties(bench.modbus_smoke PROPERTIES TIMEOUT 30 LABELS bench)
