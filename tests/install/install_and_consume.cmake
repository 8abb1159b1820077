# Installs the already-built faultline into WORK_DIR/prefix, checks the installed `faultline`
# binary runs (when EXPECT_BINARY is true: the build has FAULTLINE_BUILD_APPS on), then
# configures, builds and runs the consumer project in SOURCE_DIR against the installed package.
file(REMOVE_RECURSE ${WORK_DIR})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${WORK_DIR}/prefix
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "install failed: ${rc}")
endif()

if(EXPECT_BINARY)
  set(binary ${WORK_DIR}/prefix/bin/faultline)
  if(NOT EXISTS ${binary})
    message(FATAL_ERROR "the faultline binary was not installed to ${binary}")
  endif()
  execute_process(COMMAND ${binary} version RESULT_VARIABLE rc OUTPUT_VARIABLE out)
  string(STRIP "${out}" out)
  message(STATUS "installed binary says: ${out}")
  if(NOT rc EQUAL 0 OR NOT out STREQUAL "faultline ${EXPECTED_VERSION}")
    message(FATAL_ERROR "'faultline version' failed (${rc}) or printed '${out}', "
                        "expected 'faultline ${EXPECTED_VERSION}'")
  endif()
endif()

execute_process(COMMAND ${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/build -G ${GENERATOR}
                        -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix -DCMAKE_BUILD_TYPE=Release
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "consumer configure failed: ${rc}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${WORK_DIR}/build RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "consumer build failed: ${rc}")
endif()
foreach(program consumer check_consumer)
  execute_process(COMMAND ${WORK_DIR}/build/${program} RESULT_VARIABLE rc OUTPUT_VARIABLE out)
  message(STATUS "${program} says: ${out}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${program} run failed: ${rc}")
  endif()
endforeach()
