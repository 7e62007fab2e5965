# firelink_add_plugin(<name> [OUTPUT_DIRECTORY <dir>] [SCRIPTS <dir>] <sources>...)
#
# Builds a firelink driver plugin: a MODULE library named <name>.so, linked against firelink::sdk, with the SDK's
# linker version script so that it exports exactly one symbol, firelink_plugin_entry, and with --no-undefined so a
# missing symbol fails the build rather than the load on a gateway. SCRIPTS: the folder of the plugin's device
# scripts (docs/device-scripts.md), copied beside the plugin as <name>.scripts/ at each build, where
# firelink-conform looks for them; the target's FIRELINK_SCRIPTS_DIR property names the source folder.
include_guard(GLOBAL)

set(_FIRELINK_PLUGIN_MAP "${CMAKE_CURRENT_LIST_DIR}/firelink-plugin.map" CACHE INTERNAL "firelink plugin version script")

function(firelink_add_plugin name)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "" "OUTPUT_DIRECTORY;SCRIPTS" "SOURCES")
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
  if(ARG_SCRIPTS)
    get_filename_component(_scripts "${ARG_SCRIPTS}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
    if(NOT IS_DIRECTORY "${_scripts}")
      message(FATAL_ERROR "firelink_add_plugin(${name}): SCRIPTS '${ARG_SCRIPTS}' is not a folder")
    endif()
    # Removed first, so that a script deleted from the source is not played from an old copy.
    add_custom_command(TARGET ${name} POST_BUILD
      COMMAND ${CMAKE_COMMAND} -E rm -rf $<TARGET_FILE_DIR:${name}>/${name}.scripts
      COMMAND ${CMAKE_COMMAND} -E copy_directory ${_scripts} $<TARGET_FILE_DIR:${name}>/${name}.scripts
      COMMENT "device scripts beside ${name}.so")
    set_property(TARGET ${name} PROPERTY FIRELINK_SCRIPTS_DIR "${_scripts}")
    # A changed script rebuilds nothing else, but must be copied again.
    file(GLOB _script_files CONFIGURE_DEPENDS "${_scripts}/*.toml")
    set_property(TARGET ${name} APPEND PROPERTY LINK_DEPENDS ${_script_files})
  endif()
endfunction()
