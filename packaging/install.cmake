# install.cmake -- the install steps that depend on the prefix given at
# install time (cmake --install --prefix P, or CPack's /usr), run from
# cmake_install.cmake with BH_I_SOURCE_DIR, BH_I_BINARY_DIR and BH_I_VERSION
# set (packaging/CMakeLists.txt).
#
# For the prefix /usr (the Debian package) the config, the unit and the
# state go to the FHS places outside it, as GNUInstallDirs does for /etc;
# under any other prefix they stay inside it, so a test prefix holds all.
set(BH_I_PREFIX "${CMAKE_INSTALL_PREFIX}")
if(BH_I_PREFIX STREQUAL "/usr")
  set(BH_I_ETC /etc)
  set(BH_I_VAR /var)
  set(BH_I_UNITS /lib/systemd/system)
else()
  set(BH_I_ETC "${BH_I_PREFIX}/etc")
  set(BH_I_VAR "${BH_I_PREFIX}/var")
  set(BH_I_UNITS "${BH_I_PREFIX}/lib/systemd/system")
endif()
set(BH_BIN_DIR "${BH_I_PREFIX}/bin")
set(BH_CONF_DIR "${BH_I_ETC}/bushost")
set(BH_STATE_DIR "${BH_I_VAR}/lib/bushost")
set(out "${BH_I_BINARY_DIR}/packaging/install")

configure_file("${BH_I_SOURCE_DIR}/packaging/bushost@.service.in" "${out}/bushost@.service" @ONLY)
configure_file("${BH_I_SOURCE_DIR}/packaging/bushost.pc.in" "${out}/bushost.pc" @ONLY)
configure_file("${BH_I_SOURCE_DIR}/packaging/bushost-testkit.pc.in" "${out}/bushost-testkit.pc"
  @ONLY)

# The example config is etc/service.ini with the installed paths: the
# example plugins, a state folder of its own and a broker on this machine.
file(READ "${BH_I_SOURCE_DIR}/etc/service.ini" ini)
macro(bh_edit from to)
  if(NOT ini MATCHES "${from}")
    message(FATAL_ERROR "etc/service.ini: no line matches '${from}'; update packaging/install.cmake")
  endif()
  string(REGEX REPLACE "${from}" "${to}" ini "${ini}")
endmacro()
bh_edit("^; bushost configuration for the example plugins[^\n]*"
  "; bushost configuration for the example plugins: systemctl start bushost@example")
bh_edit("\nurl = [^\n]*" "\nurl = amqp://guest:guest@localhost:5672/")
bh_edit("\n; Folder whose [^\n]*" "\n; Folder whose *.so files are loaded.")
bh_edit("\nplugins_dir = [^\n]*" "\nplugins_dir = ${BH_I_PREFIX}/lib/bushost/examples")
bh_edit("\nstate_dir = [^\n]*" "\nstate_dir = ${BH_STATE_DIR}/example")
file(WRITE "${out}/example.ini" "${ini}")

file(INSTALL DESTINATION "${BH_I_UNITS}" TYPE FILE FILES "${out}/bushost@.service")
file(INSTALL DESTINATION "${BH_I_PREFIX}/lib/pkgconfig" TYPE FILE FILES "${out}/bushost.pc"
  "${out}/bushost-testkit.pc")
file(INSTALL DESTINATION "${BH_CONF_DIR}" TYPE FILE FILES "${out}/example.ini")
