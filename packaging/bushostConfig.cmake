# bushostConfig.cmake -- find_package(bushost): the plugin SDK as the
# imported target bushost::sdk (its header; a plugin links nothing of the
# host), the test kit as bushost::testkit (bushost_test.h and the static
# libbushost-testkit, for a plugin's unit tests),
# bushost_add_plugin(<name> <sources...>), and BUSHOST_PLUGINS_DIR, the
# installed plugins folder.
get_filename_component(_bushost_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
if(NOT TARGET bushost::sdk)
  add_library(bushost::sdk INTERFACE IMPORTED)
  set_target_properties(bushost::sdk PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${_bushost_prefix}/include/bushost")
endif()
include("${CMAKE_CURRENT_LIST_DIR}/BushostPlugin.cmake")
if(NOT TARGET bushost::testkit)
  # The kit carries the host's codec: it links libcbor and jansson.
  find_library(BUSHOST_CBOR_LIBRARY cbor)
  find_library(BUSHOST_JANSSON_LIBRARY jansson)
  add_library(bushost::testkit STATIC IMPORTED)
  set_target_properties(bushost::testkit PROPERTIES
    IMPORTED_LOCATION "${_bushost_prefix}/lib/libbushost-testkit.a"
    INTERFACE_LINK_LIBRARIES
      "bushost::sdk;${BUSHOST_CBOR_LIBRARY};${BUSHOST_JANSSON_LIBRARY};${CMAKE_DL_LIBS};Threads::Threads")
endif()
set(BUSHOST_PLUGINS_DIR "${_bushost_prefix}/lib/bushost/plugins")
unset(_bushost_prefix)
