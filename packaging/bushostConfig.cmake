# bushostConfig.cmake -- find_package(bushost): the plugin SDK as the
# imported target bushost::sdk (its header; a plugin links nothing of the
# host), bushost_add_plugin(<name> <sources...>), and BUSHOST_PLUGINS_DIR,
# the installed plugins folder.
get_filename_component(_bushost_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
if(NOT TARGET bushost::sdk)
  add_library(bushost::sdk INTERFACE IMPORTED)
  set_target_properties(bushost::sdk PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${_bushost_prefix}/include/bushost")
endif()
set(BUSHOST_PLUGINS_DIR "${_bushost_prefix}/lib/bushost/plugins")
unset(_bushost_prefix)
include("${CMAKE_CURRENT_LIST_DIR}/BushostPlugin.cmake")
