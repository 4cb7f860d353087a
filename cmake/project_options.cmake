# Warnings on our own code; third-party headers come in as SYSTEM.
# Warnings as errors are for CI and developers (scripts/test turns CLEARING_WERROR on), not for
# everyone who builds: a packager's newer or older compiler may warn where ours does not, and
# should still get a binary.
option(CLEARING_WERROR "treat compiler warnings on our code as errors (scripts/test turns it on)" OFF)
add_library(project_options INTERFACE)
target_compile_options(project_options INTERFACE -Wall -Wextra -Wno-missing-field-initializers)
if(CLEARING_WERROR)
  target_compile_options(project_options INTERFACE -Werror)
endif()
# g++ 12 at -O3 (Release) reports -Wrestrict inside libstdc++ wherever `"literal" + std::string`
# is inlined (GCC bug 105329, exabyte-sized overlaps that cannot happen): in pqxx::quote and
# in files of config/, external_streams/ and eventstore/tests/ at least. At -O2 (RelWithDebInfo,
# what the tests build) and -O0 (Debug) the warning stays on and finds real overlaps; only
# Release on g++ 12 drops it.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  target_compile_options(project_options INTERFACE $<$<CONFIG:Release>:-Wno-restrict>)
endif()
target_link_libraries(project_options INTERFACE Threads::Threads)

# Links a service executable with jemalloc when CLEARING_JEMALLOC is on (CMakeLists.txt).
function(clearing_service_allocator target)
  if(CLEARING_JEMALLOC)
    target_link_libraries(${target} PRIVATE ${JEMALLOC_LIBRARY})
  endif()
endfunction()
