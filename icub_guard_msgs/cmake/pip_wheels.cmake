# Read only where ROS comes from PyPI wheels, not a ROS install: the Makefile passes this file as
# CMAKE_PROJECT_INCLUDE when it builds icub_guard_msgs into the virtual environment.
#
# Why: the message wheels' exported CMake targets (std_msgs, sensor_msgs, ...) name the include
# folders of the machine the wheels were built on (/opt/python/cp311-cp311/include/python3.11 and
# that prefix's numpy include). CMake refuses a target whose include folder does not exist, so at the
# end of configuration every such folder is replaced by this interpreter's own (Python3_EXECUTABLE).
# Nothing outside the build is written.

function(_icub_guard_wheel_includes)
  execute_process(
    COMMAND "${Python3_EXECUTABLE}" -c
      "import sysconfig, numpy; print(sysconfig.get_paths()['include'] + ';' + numpy.get_include(), end='')"
    OUTPUT_VARIABLE _paths RESULT_VARIABLE _rc)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "pip_wheels.cmake: ${Python3_EXECUTABLE} cannot name its include folders")
  endif()
  list(GET _paths 0 _python_include)
  list(GET _paths 1 _numpy_include)
  set(_dirs "${CMAKE_SOURCE_DIR}")
  while(_dirs)
    list(POP_FRONT _dirs _dir)
    get_property(_subdirs DIRECTORY "${_dir}" PROPERTY SUBDIRECTORIES)
    list(APPEND _dirs ${_subdirs})
    get_property(_targets DIRECTORY "${_dir}" PROPERTY IMPORTED_TARGETS)
    foreach(_target IN LISTS _targets)
      get_target_property(_includes ${_target} INTERFACE_INCLUDE_DIRECTORIES)
      if(_includes MATCHES "^/opt/python/|;/opt/python/")
        list(TRANSFORM _includes REPLACE "^/opt/python/[^/]+/include/python3[.0-9]*$" "${_python_include}")
        list(TRANSFORM _includes REPLACE "^/opt/python/.*/numpy/_core/include$" "${_numpy_include}")
        set_target_properties(${_target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_includes}")
      endif()
    endforeach()
  endwhile()
endfunction()

cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL _icub_guard_wheel_includes)
