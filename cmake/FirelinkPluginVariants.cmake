# firelink_add_plugin_variants: many plugins from one C source, one MODULE per variant, each built like a vendor
# plugin (hidden symbols, the plugin version script) into one folder, for the tests that need a plugin broken or
# shaped in one particular way (tests/fixtures, conformance/broken).
#
#   firelink_add_plugin_variants(<prefix> SOURCE <file.c> OUTPUT_DIRECTORY <dir>
#     [LIBRARIES <lib>...] [COMPILE_OPTIONS <opt>...] [LINK_OPTIONS <opt>...] [EXPORT_ALL <variant>...]
#     [ID_DEFINE <MACRO> ID_PREFIX <text>]
#     TARGETS_VAR <var> PATHS_VAR <var>
#     VARIANTS <name> <definitions> [<name> <definitions>]...)
#
# Each variant is target <prefix>_<name>, file <dir>/<name>.so, built with <definitions> ("A|B=1" for two, "-" for
# none). EXPORT_ALL variants keep default visibility and no version script (a plugin that exports too much); the
# others get the version script and LINK_OPTIONS. With ID_DEFINE, each variant gets <MACRO>="<ID_PREFIX><name>"
# (underscores as dashes), so that a host could load them side by side. TARGETS_VAR is set to the targets,
# PATHS_VAR to '#define <PREFIX>_<NAME> "<path>"' lines, in the caller's scope.
include_guard(GLOBAL)

function(firelink_add_plugin_variants prefix)
  cmake_parse_arguments(PARSE_ARGV 1 PV "" "SOURCE;OUTPUT_DIRECTORY;ID_DEFINE;ID_PREFIX;TARGETS_VAR;PATHS_VAR"
                        "LIBRARIES;COMPILE_OPTIONS;LINK_OPTIONS;EXPORT_ALL;VARIANTS")
  if(PV_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "firelink_add_plugin_variants(${prefix}): unknown arguments ${PV_UNPARSED_ARGUMENTS}")
  endif()
  foreach(_required SOURCE OUTPUT_DIRECTORY TARGETS_VAR PATHS_VAR VARIANTS)
    if(NOT PV_${_required})
      message(FATAL_ERROR "firelink_add_plugin_variants(${prefix}): ${_required} is required")
    endif()
  endforeach()
  list(LENGTH PV_VARIANTS _n)
  math(EXPR _odd "${_n} % 2")
  if(_odd)
    message(FATAL_ERROR "firelink_add_plugin_variants(${prefix}): VARIANTS is name/definitions pairs; ${_n} items")
  endif()

  set(_targets "")
  set(_paths "")
  string(TOUPPER ${prefix} _upper_prefix)
  math(EXPR _last "${_n} - 1")
  foreach(i RANGE 0 ${_last} 2)
    math(EXPR j "${i} + 1")
    list(GET PV_VARIANTS ${i} name)
    list(GET PV_VARIANTS ${j} defs)
    string(REPLACE "|" ";" defs "${defs}")
    if(defs STREQUAL "-")
      set(defs "")
    endif()
    if(PV_ID_DEFINE)
      string(REPLACE "_" "-" id_name ${name})
      list(APPEND defs "${PV_ID_DEFINE}=\"${PV_ID_PREFIX}${id_name}\"")
    endif()
    set(target ${prefix}_${name})
    add_library(${target} MODULE ${PV_SOURCE})
    target_link_libraries(${target} PRIVATE firelink::abi ${PV_LIBRARIES})
    target_compile_definitions(${target} PRIVATE ${defs})
    target_compile_options(${target} PRIVATE ${PV_COMPILE_OPTIONS})
    set_target_properties(${target} PROPERTIES PREFIX "" OUTPUT_NAME ${name}
                          LIBRARY_OUTPUT_DIRECTORY ${PV_OUTPUT_DIRECTORY})
    if(name IN_LIST PV_EXPORT_ALL)
      set_target_properties(${target} PROPERTIES C_VISIBILITY_PRESET default)
    else()
      set_target_properties(${target} PROPERTIES C_VISIBILITY_PRESET hidden)
      target_link_options(${target} PRIVATE "LINKER:--version-script=${_FIRELINK_PLUGIN_MAP}" ${PV_LINK_OPTIONS})
    endif()
    list(APPEND _targets ${target})
    string(TOUPPER ${name} upper)
    string(APPEND _paths "#define ${_upper_prefix}_${upper} \"$<TARGET_FILE:${target}>\"\n")
  endforeach()
  set(${PV_TARGETS_VAR} ${_targets} PARENT_SCOPE)
  set(${PV_PATHS_VAR} "${_paths}" PARENT_SCOPE)
endfunction()
