// procsync/detail/process_target.hpp — the callable and arguments a
// procsync::process runs in its child, type-erased.
#pragma once

#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

namespace procsync::detail {

/// Holds a type-erased callable and its arguments, invoked once in the child.
struct process_target {
  virtual ~process_target() = default;
  virtual int invoke() = 0;
};

template <class F, class... Args>
struct process_target_of final : process_target {
  template <class G, class... A>
  explicit process_target_of(G&& g, A&&... a) : function(std::forward<G>(g)), arguments(std::forward<A>(a)...) {}

  int invoke() override {
    return std::apply(
        [this](Args&... args) -> int {
          // Invoked with rvalues, as std::thread does: the child uses them once.
          using result = std::invoke_result_t<F, Args...>;
          if constexpr (std::is_convertible_v<result, int> && !std::is_void_v<result>) {
            return static_cast<int>(std::invoke(std::move(function), std::move(args)...));
          } else {
            std::invoke(std::move(function), std::move(args)...);
            return 0;
          }
        },
        arguments);
  }

  F function;
  std::tuple<Args...> arguments;
};

}  // namespace procsync::detail
