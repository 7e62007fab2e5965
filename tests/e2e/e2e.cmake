# firelink_add_e2e_test: one way to add a Python end-to-end test. The script runs with tests/e2e on PYTHONPATH
# (the firelink_e2e package), its ARGS first (the binaries and folders it tests, which firelink_e2e.take_arguments
# reads), then the unittest arguments.
#
#   firelink_add_e2e_test(NAME <name> SCRIPT <file.py> [ARGS <arg>...] [TIMEOUT <s>]
#                         [CASES <case>... CASE_ARGS <arg>...] [MAY_SKIP])
#
# With CASES, one test <name>.<case> per case, each run with CASE_ARGS after ARGS, "@CASE@" in them replaced by the
# case. MAY_SKIP: the script has a skip that is legitimate on some machines (root, descriptors, a mount); a run that
# passed with a skip ("OK (skipped=N)" from unittest) shows in ctest as skipped, never as passed. A failure with a
# skip is still a failure.
find_package(Python3 REQUIRED COMPONENTS Interpreter)
set(FIRELINK_E2E_DIR ${CMAKE_CURRENT_LIST_DIR})

function(firelink_add_e2e_test)
  cmake_parse_arguments(PARSE_ARGV 0 E2E "MAY_SKIP" "NAME;SCRIPT;TIMEOUT" "ARGS;CASES;CASE_ARGS")
  if(E2E_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "firelink_add_e2e_test: unknown arguments ${E2E_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT E2E_NAME OR NOT E2E_SCRIPT)
    message(FATAL_ERROR "firelink_add_e2e_test: NAME and SCRIPT are required")
  endif()
  get_filename_component(_script ${E2E_SCRIPT} ABSOLUTE)
  if(NOT EXISTS ${_script})
    message(FATAL_ERROR "firelink_add_e2e_test(${E2E_NAME}): no script ${_script}")
  endif()
  if(E2E_CASE_ARGS AND NOT E2E_CASES)
    message(FATAL_ERROR "firelink_add_e2e_test(${E2E_NAME}): CASE_ARGS without CASES")
  endif()
  if(NOT E2E_TIMEOUT)
    set(E2E_TIMEOUT 300)
  endif()

  set(_names "")
  if(E2E_CASES)
    foreach(_case IN LISTS E2E_CASES)
      string(REPLACE "@CASE@" "${_case}" _case_args "${E2E_CASE_ARGS}")
      add_test(NAME ${E2E_NAME}.${_case} COMMAND Python3::Interpreter ${_script} ${E2E_ARGS} ${_case_args})
      list(APPEND _names ${E2E_NAME}.${_case})
    endforeach()
  else()
    add_test(NAME ${E2E_NAME} COMMAND Python3::Interpreter ${_script} ${E2E_ARGS})
    set(_names ${E2E_NAME})
  endif()
  set_tests_properties(${_names} PROPERTIES TIMEOUT ${E2E_TIMEOUT}
                       ENVIRONMENT "PYTHONPATH=${FIRELINK_E2E_DIR};PYTHONDONTWRITEBYTECODE=1")
  if(E2E_MAY_SKIP)
    set_tests_properties(${_names} PROPERTIES SKIP_REGULAR_EXPRESSION "OK \\(skipped=[0-9]+\\)")
  endif()
endfunction()
