# bushost_plugin(<name> <sources...>): build a plugin as <name>.so, a MODULE
# with no "lib" prefix, against the SDK header, exporting only its descriptor.
function(bushost_plugin name)
  add_library(${name} MODULE ${ARGN})
  set_target_properties(${name} PROPERTIES PREFIX "" C_VISIBILITY_PRESET hidden)
  target_link_libraries(${name} PRIVATE bushost_sdk Threads::Threads)
endfunction()
