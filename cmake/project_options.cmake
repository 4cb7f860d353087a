# Warnings as errors on our own code; third-party headers come in as SYSTEM.
add_library(project_options INTERFACE)
target_compile_options(project_options INTERFACE -Wall -Wextra -Werror -Wno-missing-field-initializers)
target_link_libraries(project_options INTERFACE Threads::Threads)

# Links a service executable with jemalloc when CLEARING_JEMALLOC is on (CMakeLists.txt).
function(clearing_service_allocator target)
  if(CLEARING_JEMALLOC)
    target_link_libraries(${target} PRIVATE ${JEMALLOC_LIBRARY})
  endif()
endfunction()
