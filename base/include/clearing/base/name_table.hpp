#pragma once
// The text names of an enumeration as one table of {enumerator, name} pairs, read both ways
// (value to name, name to value), so that each name is spelled exactly once and no switch
// repeats the enumerators. Each table is checked where it is defined:
//   static_assert(base::lists_every_enumerator(kTable, Enum::last_one));
// fails to build when the table is out of declaration order, has a gap, repeats a name or
// misses the enumerator named last (the one an enumerator added at the end must become).
//
// Pure and constexpr: no allocation, no state, safe from any thread.

#include <array>
#include <cstddef>
#include <optional>
#include <string_view>
#include <utility>

namespace clearing::base {

template <class Enum, std::size_t N>
using NameTable = std::array<std::pair<Enum, std::string_view>, N>;

// The name of `value`, or nullopt for a value outside the enumeration (a cast integer).
template <class Enum, std::size_t N>
constexpr std::optional<std::string_view> name_in(const NameTable<Enum, N>& table,
                                                  Enum value) noexcept {
  for (const auto& [candidate, name] : table)
    if (candidate == value) return name;
  return std::nullopt;
}

// The value named exactly `name` (case-sensitive), or nullopt.
template <class Enum, std::size_t N>
constexpr std::optional<Enum> value_in(const NameTable<Enum, N>& table,
                                       std::string_view name) noexcept {
  for (const auto& [value, candidate] : table)
    if (candidate == name) return value;
  return std::nullopt;
}

// Entry i names enumerator i, the last entry is `last`, and no name repeats.
template <class Enum, std::size_t N>
constexpr bool lists_every_enumerator(const NameTable<Enum, N>& table, Enum last) {
  for (std::size_t i = 0; i < N; ++i) {
    if (static_cast<std::size_t>(table[i].first) != i) return false;
    for (std::size_t j = 0; j < i; ++j)
      if (table[j].second == table[i].second) return false;
  }
  return table[N - 1].first == last;
}

}  // namespace clearing::base
