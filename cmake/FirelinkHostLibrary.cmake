# firelink_add_host_library: one host component's library, in the layout every host/<component>/ folder follows.
#
#   firelink_add_host_library(<name> SOURCES <file>... [PUBLIC <lib>...] [PRIVATE <lib>...])
#
# Makes the static library firelink_<name>, its alias firelink::<name> (what other folders link), with
# <folder>/include as its public headers (<firelink/<name>/...>), linked PUBLIC and PRIVATE as given.
include_guard(GLOBAL)

function(firelink_add_host_library name)
  cmake_parse_arguments(PARSE_ARGV 1 HL "" "" "SOURCES;PUBLIC;PRIVATE")
  if(HL_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "firelink_add_host_library(${name}): unknown arguments ${HL_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT HL_SOURCES)
    message(FATAL_ERROR "firelink_add_host_library(${name}): SOURCES is required")
  endif()
  add_library(firelink_${name} STATIC ${HL_SOURCES})
  add_library(firelink::${name} ALIAS firelink_${name})
  target_include_directories(firelink_${name} PUBLIC $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>)
  target_link_libraries(firelink_${name} PUBLIC ${HL_PUBLIC} PRIVATE ${HL_PRIVATE})
endfunction()
