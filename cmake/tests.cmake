# Test helpers.
#   clearing_add_test(NAME name SOURCES ... LIBS ... [PG])
# PG marks a test that needs the throwaway PostgreSQL server (scripts/with-postgres
# exports CLEARING_TEST_DATABASE_URL); it is labelled `pg` so `ctest -LE pg` runs the
# pure tests alone.
add_library(doctest_main STATIC ${CMAKE_SOURCE_DIR}/tests/support/doctest_main.cpp)
target_link_libraries(doctest_main PUBLIC doctest::doctest)

# A fresh database per test on the throwaway server (tests/support/test_database.hpp).
add_library(pg_testing STATIC ${CMAKE_SOURCE_DIR}/tests/support/test_database.cpp)
target_include_directories(pg_testing PUBLIC ${CMAKE_SOURCE_DIR}/tests/support)
target_link_libraries(pg_testing PUBLIC PkgConfig::PQXX PRIVATE base)

function(clearing_add_test)
  cmake_parse_arguments(T "PG" "NAME;TIMEOUT" "SOURCES;LIBS" ${ARGN})
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE doctest_main project_options ${T_LIBS})
  add_test(NAME ${T_NAME} COMMAND ${T_NAME})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  set_tests_properties(${T_NAME} PROPERTIES TIMEOUT ${T_TIMEOUT})
  if(T_PG)
    set_tests_properties(${T_NAME} PROPERTIES LABELS pg)
  else()
    set_tests_properties(${T_NAME} PROPERTIES LABELS unit)
  endif()
endfunction()

# A test or benchmark that starts the executables as processes: their paths as
# compile definitions (CLEARING_ADAPTER, CLEARING_MOCK, CORE_SIM, KAFKA_MOCK, SOURCE_DIR),
# and they are built first. Call it after tools/ and adapter/cli/ are added.
function(clearing_uses_processes target)
  target_compile_definitions(${target} PRIVATE
    SOURCE_DIR="${CMAKE_SOURCE_DIR}"
    CLEARING_ADAPTER="$<TARGET_FILE:clearing-adapter>"
    CLEARING_MOCK="$<TARGET_FILE:clearing-mock>"
    CORE_SIM="$<TARGET_FILE:core-sim>"
    KAFKA_MOCK="$<TARGET_FILE:kafka-mock>")
  add_dependencies(${target} clearing-adapter clearing-mock core-sim kafka-mock)
endfunction()
