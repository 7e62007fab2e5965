# firelink_add_plugin(<name> [OUTPUT_DIRECTORY <dir>] <sources>...)
#
# Builds a firelink driver plugin: a MODULE library named <name>.so, linked against firelink::sdk, with the SDK's
# linker version script so that it exports exactly one symbol, firelink_plugin_entry, and with --no-undefined so a
# missing symbol fails the build rather than the load on a gateway.
include_guard(GLOBAL)

set(_FIRELINK_PLUGIN_MAP "${CMAKE_CURRENT_LIST_DIR}/firelink-plugin.map" CACHE INTERNAL "firelink plugin version script")

function(firelink_add_plugin name)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "" "OUTPUT_DIRECTORY" "SOURCES")
  set(sources ${ARG_SOURCES} ${ARG_UNPARSED_ARGUMENTS})
  if(NOT sources)
    message(FATAL_ERROR "firelink_add_plugin(${name}): no sources given")
  endif()
  add_library(${name} MODULE ${sources})
  target_link_libraries(${name} PRIVATE firelink::sdk)
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    LINK_DEPENDS "${_FIRELINK_PLUGIN_MAP}")
  target_link_options(${name} PRIVATE "LINKER:--version-script=${_FIRELINK_PLUGIN_MAP}" "LINKER:--no-undefined")
  if(ARG_OUTPUT_DIRECTORY)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${ARG_OUTPUT_DIRECTORY}")
  elseif(DEFINED FIRELINK_PLUGIN_OUTPUT_DIRECTORY)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${FIRELINK_PLUGIN_OUTPUT_DIRECTORY}")
  endif()
endfunction()
