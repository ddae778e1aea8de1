// SubspaceDim: the d of a job (DESIGN.md "Jobs"): how many numbers training may move.
//
//   0       kLinear    a linear readout on the frozen model (features computed once)
//   d >= 1  kSubspace  the model's parameters move inside a random d-dimensional Fastfood subspace
//   full    kFull      every parameter is trained directly (the reference of "90% of full" thresholds)
//
// Written as text ("0", "1000", "full") in job specs, overrides, result files and messages.
// Standard library only, so the engine-only build can use it. Thread-safety: a value type.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace dwarp {

struct SubspaceDim {
  enum Kind { kLinear, kSubspace, kFull };

  Kind kind = kLinear;
  // d for kSubspace (>= 1); 0 for kLinear and kFull (full's size, D, is known only once the model is built).
  int64_t value = 0;

  static SubspaceDim Linear() { return {kLinear, 0}; }
  static SubspaceDim Subspace(int64_t d) { return {kSubspace, d}; }
  static SubspaceDim Full() { return {kFull, 0}; }

  // "0" -> kLinear, "1000" -> kSubspace(1000), "full" -> kFull. Anything else (negative, "fuul", "1e3",
  // "", a value past int64) is InvalidArgument naming the text and listing what is accepted.
  static StatusOr<SubspaceDim> Parse(std::string_view text);
  // From an integer: 0 -> kLinear, >= 1 -> kSubspace; negative is InvalidArgument naming the value.
  static StatusOr<SubspaceDim> FromInt(int64_t d);

  // "0", "1000" or "full"; Parse(ToString()) returns the same value.
  std::string ToString() const;

  bool is_linear() const { return kind == kLinear; }
  bool is_subspace() const { return kind == kSubspace; }
  bool is_full() const { return kind == kFull; }

  friend bool operator==(const SubspaceDim& a, const SubspaceDim& b) { return a.kind == b.kind && a.value == b.value; }
  friend bool operator!=(const SubspaceDim& a, const SubspaceDim& b) { return !(a == b); }
};

}  // namespace dwarp
