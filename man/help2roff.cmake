# help2roff.cmake -- writes buscli(1) from its template, putting the text of
# `buscli --help` and of every `buscli COMMAND --help` where the template
# says .\" @HELP@, so the page says what the program says.
#
#   cmake -DBUSCLI=<exe> -DIN=<template> -DOUT=<page> -P help2roff.cmake

# Text as a roff no-fill block: backslashes escaped, and a line starting
# with '.' or '\'' protected.
function(roff_block text out)
  string(REPLACE "\\" "\\e" text "${text}")
  string(REPLACE "-" "\\-" text "${text}")
  string(REGEX REPLACE "(^|\n)([.'])" "\\1\\\\&\\2" text "${text}")
  set(${out} ".nf\n${text}.fi\n" PARENT_SCOPE)
endfunction()

function(help args out)
  execute_process(COMMAND ${BUSCLI} ${args} --help OUTPUT_VARIABLE text RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0 OR text STREQUAL "")
    message(FATAL_ERROR "buscli ${args} --help failed (${rc})")
  endif()
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

help("" top)
# The command list: lines "  NAME  what it does" after "commands:".
string(REGEX MATCH "commands:\n(  [a-z]+ [^\n]*\n)+" list "${top}")
string(REGEX MATCHALL "\n  [a-z]+" names "${list}")
if(NOT names)
  message(FATAL_ERROR "no command list in 'buscli --help'")
endif()
roff_block("${top}" body)
string(APPEND body ".SH COMMANDS\n")
foreach(name IN LISTS names)
  string(STRIP "${name}" name)
  help(${name} text)
  roff_block("${text}" block)
  string(APPEND body ".SS ${name}\n${block}")
endforeach()

file(READ ${IN} page)
string(FIND "${page}" ".\\\" @HELP@\n" at)
if(at LESS 0)
  message(FATAL_ERROR "${IN}: no line .\\\" @HELP@")
endif()
string(REPLACE ".\\\" @HELP@\n" "${body}" page "${page}")
file(WRITE ${OUT} "${page}")
