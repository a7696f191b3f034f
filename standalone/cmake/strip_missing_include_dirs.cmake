# Passed with -DCMAKE_PROJECT_INCLUDE=... when building interface packages against the
# ROS 2 PyPI wheels. Their exported *__rosidl_generator_py (and similar) CMake targets
# list include directories from the wheels' build container (/opt/python/...), which do
# not exist on this machine, and CMake refuses to generate with them. At the end of
# configure, drop every non-existent directory from the imported targets'
# INTERFACE_INCLUDE_DIRECTORIES. Targets whose directories all exist are untouched.
function(_edge_classifier_strip_missing_include_dirs)
  get_property(_targets DIRECTORY "${CMAKE_SOURCE_DIR}" PROPERTY IMPORTED_TARGETS)
  foreach(_target IN LISTS _targets)
    get_target_property(_dirs ${_target} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT _dirs)
      continue()
    endif()
    set(_kept "")
    set(_dropped "")
    foreach(_dir IN LISTS _dirs)
      if(_dir MATCHES "^\\$<" OR EXISTS "${_dir}")
        list(APPEND _kept "${_dir}")
      else()
        list(APPEND _dropped "${_dir}")
      endif()
    endforeach()
    if(_dropped)
      message(STATUS "edge_classifier: ${_target}: dropped missing include dirs ${_dropped}")
      set_property(TARGET ${_target} PROPERTY INTERFACE_INCLUDE_DIRECTORIES "${_kept}")
    endif()
  endforeach()
endfunction()

cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL _edge_classifier_strip_missing_include_dirs)
