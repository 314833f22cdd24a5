# bushost_add_plugin(<name> <sources...>): build a plugin as <name>.so, a
# MODULE with no "lib" prefix (the host loads every *.so of plugins_dir),
# against the SDK target bushost::sdk, exporting only its descriptor.
#
# One file for both uses: the source tree includes it after defining
# bushost::sdk as an alias of its own SDK target, and the installed
# bushostConfig.cmake includes it after importing bushost::sdk.
if(NOT TARGET Threads::Threads)
  find_package(Threads REQUIRED)
endif()

function(bushost_add_plugin name)
  add_library(${name} MODULE ${ARGN})
  set_target_properties(${name} PROPERTIES PREFIX "" C_VISIBILITY_PRESET hidden)
  target_link_libraries(${name} PRIVATE bushost::sdk Threads::Threads)
endfunction()
