#pragma once
// Strong types for ids, versions, sequence numbers and positions, so that a stream
// version can never be passed where a global position is expected.

#include <compare>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>

namespace clearing::base {

template <class Tag, class Rep>
class Strong {
 public:
  using rep_type = Rep;
  constexpr Strong() = default;
  constexpr explicit Strong(Rep value) : value_(std::move(value)) {}
  constexpr const Rep& value() const noexcept { return value_; }
  friend constexpr auto operator<=>(const Strong&, const Strong&) = default;
  friend constexpr bool operator==(const Strong&, const Strong&) = default;

 private:
  Rep value_{};
};

}  // namespace clearing::base

template <class Tag, class Rep>
struct std::hash<clearing::base::Strong<Tag, Rep>> {
  std::size_t operator()(const clearing::base::Strong<Tag, Rep>& s) const noexcept {
    return std::hash<Rep>{}(s.value());
  }
};
