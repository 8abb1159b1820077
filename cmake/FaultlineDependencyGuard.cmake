# faultline_forbid_dependencies(TARGET <target> ALLOWED <faultline targets...>)
#
# Fails configuration when <target> reaches, through LINK_LIBRARIES or INTERFACE_LINK_LIBRARIES
# (transitively, aliases resolved, $<LINK_ONLY:...> unwrapped), any faultline_* module target that
# is not in ALLOWED. It keeps a layering promise checkable: e.g. faultline_check must link without
# the simulator or the adapters, so that a history recorded from a real system can be checked by a
# program that links faultline::check alone.
function(faultline_forbid_dependencies)
  cmake_parse_arguments(ARG "" "TARGET" "ALLOWED" ${ARGN})
  set(seen "")
  set(queue ${ARG_TARGET})
  while(queue)
    list(POP_FRONT queue item)
    # Unwrap $<LINK_ONLY:x> (how static libraries carry private dependencies); skip other
    # generator expressions, which faultline's module targets do not use for linking.
    if(item MATCHES "^\\$<LINK_ONLY:(.+)>$")
      set(item "${CMAKE_MATCH_1}")
    elseif(item MATCHES "^\\$<")
      continue()
    endif()
    if(NOT TARGET "${item}")
      continue()
    endif()
    get_target_property(aliased "${item}" ALIASED_TARGET)
    if(aliased)
      set(item "${aliased}")
    endif()
    if(item IN_LIST seen)
      continue()
    endif()
    list(APPEND seen "${item}")
    if(NOT item STREQUAL ARG_TARGET AND item MATCHES "^faultline_" AND
       NOT item STREQUAL "faultline_warnings" AND NOT item IN_LIST ARG_ALLOWED)
      message(FATAL_ERROR "${ARG_TARGET} must not depend on ${item} (allowed: ${ARG_ALLOWED})")
    endif()
    foreach(prop LINK_LIBRARIES INTERFACE_LINK_LIBRARIES)
      get_target_property(libs "${item}" ${prop})
      if(libs)
        list(APPEND queue ${libs})
      endif()
    endforeach()
  endwhile()
endfunction()
